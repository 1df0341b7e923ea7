"""The upload widget of notebook 8: a photo in, the RotNet's answer and the corrected picture out."""
from __future__ import annotations

from .apply import OrientResult, orient_image
from .figures import show_result
from .orienter import Orienter
from .turns import DEFAULT_MIN_CONFIDENCE


class OrientationWidget:
    """Upload a photo (ipywidgets FileUpload), see the RotNet's answer and the corrected picture.

    The logic is in :meth:`predict_bytes` and :meth:`update` (testable without
    a browser); ``.ui`` is the box to display. Like the other widgets, displaying
    ``.ui`` also stores a still (PNG) of what it shows: call ``update`` with an
    example picture first, or the still only says to upload one.
    """

    def __init__(self, orienter: Orienter, min_confidence: float = DEFAULT_MIN_CONFIDENCE):
        import ipywidgets as W
        from ..widgets import StillBox
        self.orienter, self.min_confidence = orienter, min_confidence
        self.upload = W.FileUpload(accept="image/*", multiple=False, description="Upload a photo")
        self.out = W.Output()
        self.upload.observe(self._on_upload, names="value")
        self.ui = StillBox([W.HTML("Upload a photo (JPEG, PNG, WebP, GIF, BMP, TIFF); nothing leaves this kernel."),
                        self.upload, self.out], self.png)
        self.last: OrientResult | None = None
        self.truth: int | None = None         # the last picture's true turn, when known (an example, not an upload)

    def _on_upload(self, change) -> None:
        files = change.get("new") or ()
        if files:
            f = files[-1]
            self.update(bytes(f["content"]), f.get("name", "upload"))

    def predict_bytes(self, data: bytes, name: str = "upload", truth: int | None = None) -> OrientResult:
        """The prediction for an uploaded file's bytes (the decoded image kept for display); ``truth``: the turn
        the picture really has, when known (an example), for the bars' colours."""
        self.last = orient_image(self.orienter, bytes(data), name, self.min_confidence, keep_image=True)
        self.truth = truth
        return self.last

    def update(self, data: bytes, name: str = "upload", truth: int | None = None) -> OrientResult:
        """Predict and draw the result into the widget's output area."""
        import matplotlib.pyplot as plt
        res = self.predict_bytes(data, name, truth)
        with self.out:
            self.out.clear_output(wait=True)
            show_result(res, self.orienter, truth=truth)
            plt.show()
        return res

    def png(self) -> bytes:
        """A still (PNG) of the last result, or of an invitation to upload when there is none."""
        import matplotlib.pyplot as plt
        from ..widgets import still_png
        if self.last is None:
            fig = plt.figure(figsize=(6, 0.8))
            fig.text(0.02, 0.5, "Upload a photo to see the RotNet's answer and the corrected picture.", va="center")
            return still_png(fig)
        return still_png(show_result(self.last, self.orienter, truth=self.truth))
