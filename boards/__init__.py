"""Board profiles, meter profiles and MCU firmware sources shipped with frugalbench (installed as
``frugalbench_boards``; ``harness.mcu.board.boards_dir``)."""
