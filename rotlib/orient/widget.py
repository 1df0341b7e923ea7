"""The upload widget of notebook 8: a photo in, the RotNet's answer and the corrected picture out."""
from __future__ import annotations

from .apply import OrientResult, orient_image
from .figures import show_result
from .orienter import Orienter
from .turns import DEFAULT_MIN_CONFIDENCE


class OrientationWidget:
    """Upload a photo (ipywidgets FileUpload), see the RotNet's answer and the corrected picture.

    The logic is in :meth:`predict_bytes` and :meth:`update` (testable without
    a browser); ``.ui`` is the box to display.
    """

    def __init__(self, orienter: Orienter, min_confidence: float = DEFAULT_MIN_CONFIDENCE):
        import ipywidgets as W
        self.orienter, self.min_confidence = orienter, min_confidence
        self.upload = W.FileUpload(accept="image/*", multiple=False, description="Upload a photo")
        self.out = W.Output()
        self.upload.observe(self._on_upload, names="value")
        self.ui = W.VBox([W.HTML("Upload a photo (JPEG, PNG, WebP, GIF, BMP, TIFF); nothing leaves this kernel."),
                          self.upload, self.out])
        self.last: OrientResult | None = None

    def _on_upload(self, change) -> None:
        files = change.get("new") or ()
        if files:
            f = files[-1]
            self.update(bytes(f["content"]), f.get("name", "upload"))

    def predict_bytes(self, data: bytes, name: str = "upload") -> OrientResult:
        """The prediction for an uploaded file's bytes (the decoded image kept for display)."""
        self.last = orient_image(self.orienter, bytes(data), name, self.min_confidence, keep_image=True)
        return self.last

    def update(self, data: bytes, name: str = "upload") -> OrientResult:
        """Predict and draw the result into the widget's output area."""
        import matplotlib.pyplot as plt
        res = self.predict_bytes(data, name)
        with self.out:
            self.out.clear_output(wait=True)
            show_result(res, self.orienter)
            plt.show()
        return res
