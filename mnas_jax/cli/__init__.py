"""The `mnas` command: thin argparse front ends over library functions."""
