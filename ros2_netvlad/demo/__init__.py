"""The demo world made of real photographs, rosbag message builders for it and for the tests
(``messages``), and the end-to-end demo (``run``). May import every core stage."""
