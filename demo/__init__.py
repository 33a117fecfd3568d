"""Stages of `make demo`: each module is one stage, runnable alone with `python -m demo.<stage>`."""
