"""Initial schema: sources, items, files, categories, annotations, panoptic records, revisions.

Revision ID: 0001
Revises: 

The tables of `repo.store.schema` as first released; see that module for the row-version model.
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # Row ids of every versioned table; a sequence never blocks concurrent writers.
        op.execute("CREATE SEQUENCE dsrepo_row_ids")
    op.create_table('annotations',
    sa.Column('row_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('rev_from', sa.Integer(), nullable=False),
    sa.Column('rev_to', sa.Integer(), nullable=True),
    sa.Column('hash', sa.LargeBinary(length=16), nullable=False),
    sa.Column('file_id', sa.BigInteger(), nullable=False),
    sa.Column('item_id', sa.BigInteger(), nullable=False),
    sa.Column('position', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('coco_id', sa.BigInteger(), nullable=True),
    sa.Column('category_id', sa.BigInteger(), nullable=True),
    sa.Column('iscrowd', sa.SmallInteger(), nullable=True),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('area', sa.Float(), nullable=True),
    sa.Column('bbox_x', sa.Float(), nullable=True),
    sa.Column('bbox_y', sa.Float(), nullable=True),
    sa.Column('bbox_w', sa.Float(), nullable=True),
    sa.Column('bbox_h', sa.Float(), nullable=True),
    sa.Column('num_flags', sa.SmallInteger(), nullable=False),
    sa.Column('polygons', sa.JSON(none_as_null=True).with_variant(sa.Text(), 'sqlite'), nullable=True),
    sa.Column('rle', sa.LargeBinary(), nullable=True),
    sa.Column('rle_form', sa.String(length=8), nullable=True),
    sa.Column('keypoints', sa.JSON(none_as_null=True).with_variant(sa.Text(), 'sqlite'), nullable=True),
    sa.Column('num_keypoints', sa.Integer(), nullable=True),
    sa.Column('caption', sa.Text(), nullable=True),
    sa.Column('attributes', sa.JSON(none_as_null=True).with_variant(sa.Text(), 'sqlite'), nullable=True),
    sa.Column('extra', sa.JSON(none_as_null=True).with_variant(sa.Text(), 'sqlite'), nullable=True),
    sa.PrimaryKeyConstraint('row_id'),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('annotations', schema=None) as batch_op:
        batch_op.create_index('ix_annotations_file', ['file_id', 'position'], unique=False, sqlite_where=sa.text('rev_to IS NULL'), postgresql_where=sa.text('rev_to IS NULL'))
        batch_op.create_index('ix_annotations_history', ['file_id', 'rev_from'], unique=False)
        batch_op.create_index('ix_annotations_item', ['item_id'], unique=False, sqlite_where=sa.text('rev_to IS NULL'), postgresql_where=sa.text('rev_to IS NULL'))
        batch_op.create_index('ix_annotations_lineage', ['id', 'rev_from'], unique=False)

    op.create_table('blobs',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('sha256')
    )
    op.create_table('categories',
    sa.Column('row_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('rev_from', sa.Integer(), nullable=False),
    sa.Column('rev_to', sa.Integer(), nullable=True),
    sa.Column('hash', sa.LargeBinary(length=16), nullable=False),
    sa.Column('file_id', sa.BigInteger(), nullable=False),
    sa.Column('position', sa.BigInteger(), nullable=False),
    sa.Column('coco_id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('supercategory', sa.Text(), nullable=True),
    sa.Column('label_id', sa.BigInteger(), nullable=False),
    sa.Column('extra', sa.JSON(none_as_null=True).with_variant(sa.Text(), 'sqlite'), nullable=True),
    sa.PrimaryKeyConstraint('row_id'),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('categories', schema=None) as batch_op:
        batch_op.create_index('ix_categories_file', ['file_id', 'position'], unique=False, sqlite_where=sa.text('rev_to IS NULL'), postgresql_where=sa.text('rev_to IS NULL'))
        batch_op.create_index('ix_categories_lineage', ['id', 'rev_from'], unique=False)

    op.create_table('file_images',
    sa.Column('row_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('rev_from', sa.Integer(), nullable=False),
    sa.Column('rev_to', sa.Integer(), nullable=True),
    sa.Column('hash', sa.LargeBinary(length=16), nullable=False),
    sa.Column('file_id', sa.BigInteger(), nullable=False),
    sa.Column('item_id', sa.BigInteger(), nullable=False),
    sa.Column('position', sa.BigInteger(), nullable=False),
    sa.Column('coco_id', sa.BigInteger(), nullable=False),
    sa.Column('record', sa.JSON(none_as_null=True).with_variant(sa.Text(), 'sqlite'), nullable=True),
    sa.PrimaryKeyConstraint('row_id'),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('file_images', schema=None) as batch_op:
        batch_op.create_index('ix_file_images_file', ['file_id', 'position'], unique=False, sqlite_where=sa.text('rev_to IS NULL'), postgresql_where=sa.text('rev_to IS NULL'))
        batch_op.create_index('ix_file_images_history', ['file_id', 'rev_from'], unique=False)
        batch_op.create_index('ix_file_images_item', ['item_id'], unique=False, sqlite_where=sa.text('rev_to IS NULL'), postgresql_where=sa.text('rev_to IS NULL'))
        batch_op.create_index('ix_file_images_lineage', ['id', 'rev_from'], unique=False)

    op.create_table('files',
    sa.Column('row_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('rev_from', sa.Integer(), nullable=False),
    sa.Column('rev_to', sa.Integer(), nullable=True),
    sa.Column('hash', sa.LargeBinary(length=16), nullable=False),
    sa.Column('source_id', sa.BigInteger(), nullable=False),
    sa.Column('task', sa.String(length=32), nullable=False),
    sa.Column('subset', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('position', sa.BigInteger(), nullable=False),
    sa.Column('layout', sa.JSON(none_as_null=True).with_variant(sa.Text(), 'sqlite'), nullable=False),
    sa.Column('info', sa.JSON(none_as_null=True).with_variant(sa.Text(), 'sqlite'), nullable=True),
    sa.Column('licenses', sa.JSON(none_as_null=True).with_variant(sa.Text(), 'sqlite'), nullable=True),
    sa.Column('extra', sa.JSON(none_as_null=True).with_variant(sa.Text(), 'sqlite'), nullable=True),
    sa.PrimaryKeyConstraint('row_id'),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('files', schema=None) as batch_op:
        batch_op.create_index('ix_files_lineage', ['id', 'rev_from'], unique=False)
        batch_op.create_index('ix_files_source', ['source_id'], unique=False, sqlite_where=sa.text('rev_to IS NULL'), postgresql_where=sa.text('rev_to IS NULL'))

    op.create_table('items',
    sa.Column('row_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('rev_from', sa.Integer(), nullable=False),
    sa.Column('rev_to', sa.Integer(), nullable=True),
    sa.Column('hash', sa.LargeBinary(length=16), nullable=False),
    sa.Column('source_id', sa.BigInteger(), nullable=False),
    sa.Column('subset', sa.Text(), nullable=False),
    sa.Column('file_name', sa.Text(), nullable=False),
    sa.Column('coco_id', sa.BigInteger(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('extra', sa.JSON(none_as_null=True).with_variant(sa.Text(), 'sqlite'), nullable=True),
    sa.Column('image_path', sa.Text(), nullable=True),
    sa.Column('image_size', sa.BigInteger(), nullable=True),
    sa.Column('image_sha256', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('row_id'),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.create_index('ix_items_lineage', ['id', 'rev_from'], unique=False)
        batch_op.create_index('uq_items_key', ['source_id', 'subset', 'file_name'], unique=True, sqlite_where=sa.text('rev_to IS NULL'), postgresql_where=sa.text('rev_to IS NULL'))

    op.create_table('labels',
    sa.Column('row_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('rev_from', sa.Integer(), nullable=False),
    sa.Column('rev_to', sa.Integer(), nullable=True),
    sa.Column('hash', sa.LargeBinary(length=16), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('row_id'),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('labels', schema=None) as batch_op:
        batch_op.create_index('ix_labels_lineage', ['id', 'rev_from'], unique=False)
        batch_op.create_index('uq_labels_name', ['name'], unique=True, sqlite_where=sa.text('rev_to IS NULL'), postgresql_where=sa.text('rev_to IS NULL'))

    op.create_table('panoptic_records',
    sa.Column('row_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('rev_from', sa.Integer(), nullable=False),
    sa.Column('rev_to', sa.Integer(), nullable=True),
    sa.Column('hash', sa.LargeBinary(length=16), nullable=False),
    sa.Column('file_id', sa.BigInteger(), nullable=False),
    sa.Column('item_id', sa.BigInteger(), nullable=False),
    sa.Column('position', sa.BigInteger(), nullable=False),
    sa.Column('png_name', sa.Text(), nullable=False),
    sa.Column('extra', sa.JSON(none_as_null=True).with_variant(sa.Text(), 'sqlite'), nullable=True),
    sa.PrimaryKeyConstraint('row_id'),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('panoptic_records', schema=None) as batch_op:
        batch_op.create_index('ix_panoptic_records_file', ['file_id', 'position'], unique=False, sqlite_where=sa.text('rev_to IS NULL'), postgresql_where=sa.text('rev_to IS NULL'))
        batch_op.create_index('ix_panoptic_records_lineage', ['id', 'rev_from'], unique=False)

    op.create_table('revisions',
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('hash', sa.String(length=40), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('changes', sa.JSON(none_as_null=True).with_variant(sa.Text(), 'sqlite'), nullable=True),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('hash')
    )
    op.create_table('sources',
    sa.Column('row_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('rev_from', sa.Integer(), nullable=False),
    sa.Column('rev_to', sa.Integer(), nullable=True),
    sa.Column('hash', sa.LargeBinary(length=16), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('format', sa.String(length=50), nullable=False),
    sa.Column('path', sa.Text(), nullable=True),
    sa.Column('options', sa.JSON(none_as_null=True).with_variant(sa.Text(), 'sqlite'), nullable=True),
    sa.PrimaryKeyConstraint('row_id'),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('sources', schema=None) as batch_op:
        batch_op.create_index('ix_sources_lineage', ['id', 'rev_from'], unique=False)
        batch_op.create_index('uq_sources_name', ['name'], unique=True, sqlite_where=sa.text('rev_to IS NULL'), postgresql_where=sa.text('rev_to IS NULL'))

    op.create_table('tags',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )


def downgrade() -> None:
    op.drop_table('tags')
    with op.batch_alter_table('sources', schema=None) as batch_op:
        batch_op.drop_index('uq_sources_name', sqlite_where=sa.text('rev_to IS NULL'), postgresql_where=sa.text('rev_to IS NULL'))
        batch_op.drop_index('ix_sources_lineage')

    op.drop_table('sources')
    op.drop_table('revisions')
    with op.batch_alter_table('panoptic_records', schema=None) as batch_op:
        batch_op.drop_index('ix_panoptic_records_lineage')
        batch_op.drop_index('ix_panoptic_records_file', sqlite_where=sa.text('rev_to IS NULL'), postgresql_where=sa.text('rev_to IS NULL'))

    op.drop_table('panoptic_records')
    with op.batch_alter_table('labels', schema=None) as batch_op:
        batch_op.drop_index('uq_labels_name', sqlite_where=sa.text('rev_to IS NULL'), postgresql_where=sa.text('rev_to IS NULL'))
        batch_op.drop_index('ix_labels_lineage')

    op.drop_table('labels')
    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.drop_index('uq_items_key', sqlite_where=sa.text('rev_to IS NULL'), postgresql_where=sa.text('rev_to IS NULL'))
        batch_op.drop_index('ix_items_lineage')

    op.drop_table('items')
    with op.batch_alter_table('files', schema=None) as batch_op:
        batch_op.drop_index('ix_files_source', sqlite_where=sa.text('rev_to IS NULL'), postgresql_where=sa.text('rev_to IS NULL'))
        batch_op.drop_index('ix_files_lineage')

    op.drop_table('files')
    with op.batch_alter_table('file_images', schema=None) as batch_op:
        batch_op.drop_index('ix_file_images_lineage')
        batch_op.drop_index('ix_file_images_item', sqlite_where=sa.text('rev_to IS NULL'), postgresql_where=sa.text('rev_to IS NULL'))
        batch_op.drop_index('ix_file_images_history')
        batch_op.drop_index('ix_file_images_file', sqlite_where=sa.text('rev_to IS NULL'), postgresql_where=sa.text('rev_to IS NULL'))

    op.drop_table('file_images')
    with op.batch_alter_table('categories', schema=None) as batch_op:
        batch_op.drop_index('ix_categories_lineage')
        batch_op.drop_index('ix_categories_file', sqlite_where=sa.text('rev_to IS NULL'), postgresql_where=sa.text('rev_to IS NULL'))

    op.drop_table('categories')
    op.drop_table('blobs')
    with op.batch_alter_table('annotations', schema=None) as batch_op:
        batch_op.drop_index('ix_annotations_lineage')
        batch_op.drop_index('ix_annotations_item', sqlite_where=sa.text('rev_to IS NULL'), postgresql_where=sa.text('rev_to IS NULL'))
        batch_op.drop_index('ix_annotations_history')
        batch_op.drop_index('ix_annotations_file', sqlite_where=sa.text('rev_to IS NULL'), postgresql_where=sa.text('rev_to IS NULL'))

    op.drop_table('annotations')
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP SEQUENCE dsrepo_row_ids")
