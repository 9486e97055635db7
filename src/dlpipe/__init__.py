"""dlpipe: from data and a goal to a tested, deployable deep learning model."""

__version__ = "0.1.0"
