"""The paper's experiments as cached functions of a profile.

Notebooks and the command line call these; each trained model and each
result is cached by a key derived from what makes it (see
:mod:`rotlib.identity` and :mod:`rotlib.cache`), so notebook 3 reuses the
RotNet notebook 2 trained, and re-running a notebook loads instead of
retraining.

- :mod:`.splits`: the profile's images (training and test splits, labelled subsets);
- :mod:`.recipes`: the networks (RotNets, supervised baselines, random init), each a :class:`ModelSpec`;
- :mod:`.measures`: what is measured on them (rotation accuracy, probes on frozen features, ...).
"""
from .measures import (block_features, clear_features, crossover, head_accuracy, pixel_probe, probe, probe_blocks, result_key, rotation_accuracy,
                       rotation_accuracy_per_class, rotation_confusion, rotation_predictions, rotation_probe,
                       supervised_accuracy)
from .recipes import (ModelSpec, kept_snapshots, random_init, rotnet_snapshot, rotnet_spec, supervised_spec,
                      train_rotnet, train_rotnet_start, train_supervised)
from .splits import block_names, build_network, clear_loaded, labelled_subset, load_split
from ..rotations import canonical_rotation_set   # the CLI's and notebooks' spelling of a rotation set

__all__ = ["block_features", "block_names", "build_network", "canonical_rotation_set", "clear_caches", "crossover",
           "head_accuracy", "kept_snapshots", "labelled_subset", "load_split", "ModelSpec", "pixel_probe", "probe",
           "probe_blocks", "random_init", "result_key", "rotation_accuracy", "rotation_accuracy_per_class",
           "rotation_confusion", "rotation_predictions", "rotation_probe", "rotnet_snapshot", "rotnet_spec",
           "supervised_accuracy", "supervised_spec", "train_rotnet", "train_rotnet_start", "train_supervised"]


def clear_caches() -> None:
    """Forget the decoded datasets and frozen features this session keeps in memory (they are made again when next
    needed); the trained models and results on disk (:mod:`rotlib.cache`) are kept."""
    clear_loaded()
    clear_features()
