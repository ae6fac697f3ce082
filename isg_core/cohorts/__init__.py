"""A cohort on disk (its folder, manifest and expression table) and its preparation: every slide
tiled and selected (paper Sec. 3, steps 1-2)."""
