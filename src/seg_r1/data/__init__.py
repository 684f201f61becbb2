"""Datasets of Seg-R1: adapters for every dataset of the paper, manifests, synthetic data.

Every segmentation loader returns a :class:`datasets.Dataset` with the same columns
(``id``, ``image``, ``source``, ``task``, ``query``, ``query_type``, ``split``, ``mask``,
``annotation``; see :mod:`seg_r1.data.io`), images stored by path to the ORIGINAL files.
Read ground truth only through :func:`load_mask` / :func:`load_ignore` and images through
:func:`load_image`.

=========================================  ================================================
entry point                                data
=========================================  ================================================
:func:`load_foreground_dataset`            DIS5K, COD10K, CAMO, DUTS, DUT-OMRON, HKU-IS,
                                           ECSSD, synthetic (:mod:`.foreground`)
:func:`load_foreground_folder`             any image folder + GT folder
:func:`load_refer_dataset`                 RefCOCO / RefCOCO+ / RefCOCOg (:mod:`.refer`)
:func:`load_reasonseg_dataset`             ReasonSeg (:mod:`.reasonseg`)
:func:`load_sft_dataset`                   FCoT-schema SFT data (:mod:`.sft`)
:func:`stage_manifest`                     training data of ``prerl`` / ``rl`` / ``sod``
:func:`read_manifest`, :func:`write_manifest`  JSONL manifests (:mod:`.manifest`)
:func:`write_eval_jsonl`, :func:`load_eval_jsonl`  the seed's foreground eval list
:mod:`.synthetic`                          generated scenes with exact masks
=========================================  ================================================

Bad input (missing folder or file, unreadable/truncated image, size mismatch, non-binary
GT, empty polygons) is logged with the file name and skipped; ``strict=True`` raises
:class:`DatasetError` instead. Loaders only read the user's files.
"""

from seg_r1.data.foreground import (
    FOREGROUND_DATASETS,
    load_foreground_dataset,
    load_foreground_folder,
)
from seg_r1.data.io import (
    decode_coco_segmentation,
    load_ignore,
    load_image,
    load_mask,
    rasterize_polygon,
    rasterize_reasonseg,
)
from seg_r1.data.manifest import (
    STAGES,
    build_stage,
    load_eval_jsonl,
    prepare_stage_manifests,
    read_manifest,
    stage_manifest,
    write_eval_jsonl,
    write_manifest,
)
from seg_r1.data.reasonseg import load_reasonseg_dataset
from seg_r1.data.refer import EVAL_SPLITS, REFER_DATASETS, load_refer_dataset
from seg_r1.data.schema import (
    SEGMENTATION_COLUMNS,
    DatasetError,
    Issue,
    LoadReport,
    segmentation_features,
)
from seg_r1.data.sft import load_sft_dataset

__all__ = [
    "EVAL_SPLITS",
    "FOREGROUND_DATASETS",
    "REFER_DATASETS",
    "SEGMENTATION_COLUMNS",
    "STAGES",
    "DatasetError",
    "Issue",
    "LoadReport",
    "build_stage",
    "decode_coco_segmentation",
    "load_eval_jsonl",
    "load_foreground_dataset",
    "load_foreground_folder",
    "load_ignore",
    "load_image",
    "load_mask",
    "load_reasonseg_dataset",
    "load_refer_dataset",
    "load_sft_dataset",
    "prepare_stage_manifests",
    "rasterize_polygon",
    "rasterize_reasonseg",
    "read_manifest",
    "segmentation_features",
    "stage_manifest",
    "write_eval_jsonl",
    "write_manifest",
]
