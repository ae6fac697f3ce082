"""Using a trained model: the model bundle, slide-to-prediction inference, ``isg predict`` and the
attention maps, and exporting a bundle from a table's runs."""
