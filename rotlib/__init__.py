"""rotlib: self-supervised learning by predicting image rotations (Gidaris et al., ICLR 2018).

A thin helper package for the RotNet notebook series; see README.md.
"""
from .rotations import ROTATION_SETS, random_rotation, rotate, rotate_batch, rotate_by_angle, rotation_angles
from .models import ConvClassifier, LinearClassifier, NetworkInNetwork, NonLinearClassifier, count_parameters
from .data import DatasetNotFoundError, ImageData, load_dataset
from .checkpoints import CheckpointMismatchError
from .devices import pick_device
from .train import TrainConfig, fit
from .profiles import Profile, get_profile
from .settings import VERSION
from .attention import attention_map, equivariance_score
from .memory import keep_freed_memory

__all__ = ["ROTATION_SETS", "rotate", "rotate_batch", "rotate_by_angle", "random_rotation", "rotation_angles",
           "NetworkInNetwork", "LinearClassifier", "NonLinearClassifier", "ConvClassifier", "count_parameters",
           "DatasetNotFoundError", "ImageData", "load_dataset", "CheckpointMismatchError", "TrainConfig", "fit",
           "pick_device", "Profile", "get_profile", "attention_map", "equivariance_score", "keep_freed_memory"]

__version__ = VERSION
