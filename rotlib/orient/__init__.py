"""Which way is up? A RotNet put to work on photos whose orientation was lost (notebook 8, ``python -m rotlib orient``).

The pretext task *is* a useful task: a RotNet answers "by how many quarter
turns was this image rotated?", so undoing that turn puts a photo upright.

The pipeline for one file:

1. decode it with :func:`rotlib.data.decode` (Pillow, the EXIF orientation applied): the picture as a
   viewer shows it, so a photo that only needs its EXIF tag honoured is not "rotated"; an image whose
   header says more than ``max_pixels`` pixels (default :data:`rotlib.data.MAX_PIXELS`,
   ``--max-pixels N``) is skipped before it is decoded;
2. the model's view: centre-crop to a square, resize (antialiased) to the
   model's input size (32x32 for the CIFAR-10 RotNet: a thumbnail), normalise
   with the training data's mean/std;
3. the RotNet's softmax over the 4 turns (optionally averaged over the 4
   rotated copies: test-time augmentation), the most likely turn and its
   probability, the *confidence*;
4. below a confidence threshold the image is reported as unsure and left
   alone; otherwise the full-resolution decoded image is rotated back
   (``torch.rot90``) and written to another folder. Originals are never touched.

Turns follow :func:`rotlib.rotate`: ``k`` counter-clockwise quarter turns
were applied to an upright picture; the fix is ``k`` clockwise quarter turns.

The modules: :mod:`~rotlib.orient.turns` (the 4 classes, naming and undoing a turn),
:mod:`~rotlib.orient.orienter` (``Orienter``, the model's view, where a profile's RotNet is),
:mod:`~rotlib.orient.apply` (files and folders, corrected copies), :mod:`~rotlib.orient.table` (the
command line's report), :mod:`~rotlib.orient.evaluation` (known turns, notebook 8's numbers),
:mod:`~rotlib.orient.figures`, :mod:`~rotlib.orient.widget` and :mod:`~rotlib.orient.packaged` (the RotNet installed
with the package: the command line's default, no checkout needed).
"""
from ..data.decoding import EXIF_ORIENTATION, MAX_PIXELS, Decoded, ImageTooLarge, UnreadableImage, decode, to_rgb8
from .turns import DEFAULT_MIN_CONFIDENCE, TURNS, correct, describe_fix, describe_turn
from .orienter import Orienter, cached_rotnet_path, model_view
from .apply import OrientResult, check_output, list_files, orient_image, orient_paths, write_corrected
from .table import summary_line, table_header, table_row
from .evaluation import Evaluation, evaluate, measure, rotated_copies
from .figures import coverage_plot, show_result
from .widget import OrientationWidget

__all__ = ['EXIF_ORIENTATION', 'MAX_PIXELS', 'Decoded', 'ImageTooLarge', 'UnreadableImage', 'decode', 'to_rgb8',
           'DEFAULT_MIN_CONFIDENCE', 'TURNS', 'correct', 'describe_fix', 'describe_turn', 'Orienter',
           'cached_rotnet_path', 'model_view', 'OrientResult', 'check_output', 'list_files', 'orient_image',
           'orient_paths', 'write_corrected', 'summary_line', 'table_header', 'table_row', 'Evaluation', 'evaluate',
           'measure', 'rotated_copies', 'coverage_plot', 'show_result', 'OrientationWidget']
