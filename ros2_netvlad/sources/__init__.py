"""Posed images in: rosbag2 files (``rosbag``: images, every pose source, GNSS → ENU around an
explicit origin, /tf through ``tf_buffer``), image folders and Pittsburgh/Tokyo ``.mat`` sets
(``folders``), keyframe rules (``keyframes``), and the one ``Source`` interface that maps and
training sets are built from (``source``). Imports only the shared leaves."""
