"""Helpers of the actions, not part of the API: composing COCO output files from stored
files (`compose`) and spreading CPU-bound work over processes (`parallel`)."""
