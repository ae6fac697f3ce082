"""Feature extraction (paper Sec. 3.2): StyleGAN2 autoencoders at two scales, and ResNet50.

``stylegan`` (the networks), ``losses`` (Eq. 2), ``data`` (training patches from selected
regions), ``train`` (``isg train-extractor``), ``resnet`` (the reference features) and
``extract`` (``isg extract``: f_i and R_i into each slide's HDF5).
"""
