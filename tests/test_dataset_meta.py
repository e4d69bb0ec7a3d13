"""dataset_meta.json: written byte for byte as Datumaro writes it, read as Datumaro reads it,
and never allowed to override a file's categories silently. Datumaro 1.13.12 is the oracle."""

from __future__ import annotations

import json
import shutil

import pytest
from datumaro.components.annotation import AnnotationType, LabelCategories, MaskCategories
from datumaro.util.meta_file_util import parse_meta_file, save_meta_file

from helpers import DATA, database_contents
from repo.coco.meta import DatasetMeta, check_categories, find_meta, meta_document, read_meta, write_meta
from repo.errors import ConflictError, InputError
from repo.importing import import_dataset

PANOPTIC_CATEGORIES = json.loads((DATA / "panopticapi_sample" / "panoptic_coco_categories.json").read_text())


def _category(coco_id: int, name: str, color: list[int] | None = None) -> dict:
    return {"coco_id": coco_id, "name": name, "extra": {"color": color} if color else None}


def _datumaro_written(tmp_path, labels: list[str], colors: list[tuple[int, int, int]] | None) -> bytes:
    categories = {AnnotationType.label: LabelCategories.from_iterable(labels)}
    if colors is not None:
        categories[AnnotationType.mask] = MaskCategories(dict(enumerate(colors)))
    folder = tmp_path / "datumaro"
    folder.mkdir()
    save_meta_file(str(folder), categories)
    return (folder / "dataset_meta.json").read_bytes()


def test_labels_are_written_as_datumaro_writes_them(tmp_path):
    categories = [_category(1, "cat"), _category(2, "dog"), _category(3, "ünïcode")]
    path = write_meta(tmp_path, meta_document(categories))
    assert path == tmp_path / "dataset_meta.json"
    assert path.read_bytes() == _datumaro_written(tmp_path, ["cat", "dog", "ünïcode"], None)


def test_colours_are_written_as_datumaro_writes_them(tmp_path):
    colors = [(0, 0, 0), (220, 20, 60), (119, 11, 32)]
    categories = [_category(i + 1, name, list(color)) for i, (name, color) in enumerate(zip(["bg", "a", "b"], colors))]
    written = write_meta(tmp_path, meta_document(categories)).read_bytes()
    assert written == _datumaro_written(tmp_path, ["bg", "a", "b"], colors)
    assert json.loads(written)["background_label"] == "0"


def test_real_panoptic_categories_are_read_back_by_datumaro_with_their_ids(tmp_path):
    """COCO's 133 panoptic categories have ids up to 200: label i must be category id i+1 for
    Datumaro, so the gaps are filled with placeholders and colours stay on their labels."""
    categories = [_category(c["id"], c["name"], c["color"]) for c in PANOPTIC_CATEGORIES]
    path = write_meta(tmp_path, meta_document(categories))
    labels = parse_meta_file(str(path))
    names = list(labels)
    assert len(names) == 200
    for category in PANOPTIC_CATEGORIES:
        assert names[category["id"] - 1] == category["name"]
        assert labels[category["name"]] == tuple(category["color"])
    assert names[11] == "class-12"  # COCO has no category 12
    assert labels["class-12"] is None


def test_what_datumaro_writes_is_read_the_same_way(tmp_path):
    written = _datumaro_written(tmp_path, ["a", "b", "c"], [(1, 2, 3), (4, 5, 6), (7, 8, 9)])
    path = tmp_path / "dataset_meta.json"
    path.write_bytes(written)
    meta = read_meta(path, "dataset_meta.json")
    assert meta == DatasetMeta(["a", "b", "c"], {"a": (1, 2, 3), "b": (4, 5, 6), "c": (7, 8, 9)})
    assert list(parse_meta_file(str(path))) == meta.labels


def test_label_map_adds_labels_after_the_list(tmp_path):
    path = tmp_path / "dataset_meta.json"
    path.write_text(json.dumps({"labels": ["a"], "label_map": {"1": "b", "0": "a"}, "segmentation_colors": [[1, 1, 1], None]}))
    meta = read_meta(path, "m.json")
    assert meta == DatasetMeta(["a", "b"], {"a": (1, 1, 1)})
    assert list(parse_meta_file(str(path))) == meta.labels


def test_a_file_agreeing_with_the_categories_passes():
    meta = DatasetMeta(["a", "b", "c", "unused"], {"b": (1, 2, 3)})
    check_categories(meta, "dataset_meta.json", "instances_val.json", [_category(2, "b", [1, 2, 3]), _category(1, "a"), _category(3, "c")])


@pytest.mark.parametrize(("category", "message"), [
    (_category(2, "x"),
     "dataset_meta.json: label 'b': field 'labels': Datumaro reads this label as category id 2, which "
     "annotations/instances_val.json names 'x'; remove or fix the file, dsrepo does not choose between them"),
    (_category(4, "c"),
     "dataset_meta.json: label 'c': field 'labels': annotations/instances_val.json declares category id 4 'c', "
     "but Datumaro reads the 3 labels here as category ids 1 to 3; remove or fix the file, dsrepo does not "
     "choose between them"),
    (_category(0, "background"),
     "dataset_meta.json: label 'background': field 'labels': annotations/instances_val.json declares category "
     "id 0 'background', but Datumaro reads the 3 labels here as category ids 1 to 3; remove or fix the file, "
     "dsrepo does not choose between them"),
    (_category(2, "b", [9, 9, 9]),
     "dataset_meta.json: label 'b': field 'segmentation_colors': the colour [1, 2, 3] differs from [9, 9, 9], "
     "the 'color' of category id 2 in annotations/instances_val.json"),
])
def test_a_disagreement_names_the_label(category, message):
    meta = DatasetMeta(["a", "b", "c"], {"b": (1, 2, 3)})
    with pytest.raises(InputError) as error:
        check_categories(meta, "dataset_meta.json", "annotations/instances_val.json", [category])
    assert str(error.value) == message


def test_datumaro_sample_categories_disagree_with_positions():
    """Datumaro's coco_instances sample has category ids 1, 2, 4: a meta file listing a, b, c
    would make Datumaro read category 4 as nothing and 3 as c."""
    document = json.loads((DATA / "datumaro_coco" / "coco_instances" / "annotations" / "instances_val.json").read_text())
    categories = [_category(c["id"], c["name"]) for c in document["categories"]]
    with pytest.raises(InputError, match="declares category id 4 'c'"):
        check_categories(DatasetMeta(["a", "b", "c"]), "dataset_meta.json", "instances_val.json", categories)
    check_categories(DatasetMeta(["a", "b", "class-3", "c"]), "dataset_meta.json", "instances_val.json", categories)


@pytest.mark.parametrize(("content", "message"), [
    ("[1]", "m.json: expected an object with 'labels' (and 'label_map', 'segmentation_colors')"),
    ('{"labels": "a"}', "m.json: field 'labels': expected a list of label names"),
    ('{"label_map": {"x": "a"}}', "m.json: label_map key 'x': field 'label_map': expected a label index and a name"),
    ('{"label_map": {"0": "a"}, "segmentation_colors": [[1, 2]]}',
     "m.json: label 'a': field 'segmentation_colors': expected [r, g, b] from 0 to 255, got [1, 2]"),
])
def test_a_malformed_file_is_named(tmp_path, content, message):
    path = tmp_path / "dataset_meta.json"
    path.write_text(content)
    with pytest.raises(InputError) as error:
        read_meta(path, "m.json")
    assert str(error.value) == message


@pytest.mark.parametrize(("categories", "message"), [
    ([_category(0, "bg")],
     "dataset_meta.json cannot list category id 0 'bg': Datumaro reads label i as category id i+1 "
     "(ids 1 to 1048576 can be written); use --reindex"),
    ([_category(1, "a"), _category(1, "b")],
     "dataset_meta.json: category id 1 is 'a' in one file and 'b' in another; export the tasks separately "
     "or use --reindex"),
    ([_category(1, "a", [1, 2, 3]), _category(1, "a", [3, 2, 1])],
     "dataset_meta.json: label 'a' has the colour [1, 2, 3] in one file and [3, 2, 1] in another"),
    ([_category(1, "class-2"), _category(3, "c")],
     "dataset_meta.json: the placeholder 'class-2' for a missing category id is also a real label"),
])
def test_what_cannot_be_written_is_refused(categories, message):
    with pytest.raises(ConflictError) as error:
        meta_document(categories)
    assert str(error.value) == message


def test_the_same_category_in_several_files_is_listed_once(tmp_path):
    document = meta_document([_category(2, "b"), _category(1, "a"), _category(2, "b")])
    assert document == {"labels": ["a", "b"]}


def test_meta_is_looked_up_at_the_dataset_root(tmp_path):
    assert find_meta(tmp_path) is None
    (tmp_path / "dataset_meta.json").write_text("{}")
    assert find_meta(tmp_path) == tmp_path / "dataset_meta.json"


def _with_meta(tmp_path, labels: list[str]):
    dataset = tmp_path / "dataset"
    shutil.copytree(DATA / "datumaro_coco" / "coco_instances", dataset)
    (dataset / "dataset_meta.json").write_text(json.dumps({"labels": labels}))
    return dataset


def test_import_accepts_a_meta_file_that_agrees(backend, tmp_path):
    project = backend.create()
    result = import_dataset(project, "coco", _with_meta(tmp_path, ["a", "b", "class-3", "c"]), name="d")
    assert result.annotations == 3


def test_import_refuses_a_meta_file_that_would_relabel_and_changes_nothing(backend, tmp_path):
    project = backend.create()
    before = database_contents(project)
    dataset = _with_meta(tmp_path, ["a", "b", "c"])
    with pytest.raises(InputError) as error:
        import_dataset(project, "coco", dataset, name="d")
    assert str(error.value) == (
        f"{dataset / 'dataset_meta.json'}: label 'c': field 'labels': {dataset / 'annotations' / 'instances_train.json'} "
        "declares category id 4 'c', but Datumaro reads the 3 labels here as category ids 1 to 3; remove or fix "
        "the file, dsrepo does not choose between them"
    )
    assert database_contents(project) == before
