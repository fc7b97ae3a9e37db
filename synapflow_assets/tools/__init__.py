"""The end-user tools over a processed data root: the correction loop (``review`` CSV and pictures, ``review_ui``
in the browser), the HTML ``report``, the napari hand-off (``napari_export``) and reader plugin (``napari_reader``,
``napari.yaml``), and citable ``snapshot``\\ s with their queries (``snapshot_query``).

They read the data root and the store through the science packages; only the command line (``cli/``) imports them.
"""
