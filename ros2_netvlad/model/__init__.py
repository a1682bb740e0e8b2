"""The network and its weights: preprocessing, backbones, the NetVLAD layer and PlaceNet
(``netvlad``), PCA whitening, k-means initialization (``clustering``), checkpoints and the public
weight formats (``checkpoints``, ``importers``, ``weights.load``), the ``Describer`` that turns
images into descriptors on a device, and ranks/devices for multi-process work (``distributed``).
Imports only the shared leaves."""
