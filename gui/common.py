"""What every section of the studio page shares: error mapping, session state, small image helpers.

The GUI keeps no model or training code: it turns widget values into calls on `core.Studio` and
turns results (PIL images, dataclasses, run folders) back into widget values.
"""

import contextlib
import logging
import shutil
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

from core.surrogates.clip_edit import CLIP_WEIGHT_CHOICES

log = logging.getLogger("unlearn_studio.gui")

GPU = dict(concurrency_id="gpu", concurrency_limit=1)  # one model job at a time, all sections
CLIP_WEIGHTS = list(CLIP_WEIGHT_CHOICES)  # log-spaced, the paper's table (defined once in core)
DEFAULT_NAMES = {"black": "#000000", "white": "#FFFFFF", "red": "#FF0000", "green": "#00A000", "blue": "#0050FF",
                 "yellow": "#FFD700", "orange": "#FF8C00"}
DEFAULT_PALETTE = list(DEFAULT_NAMES.values())  # for models without a palette of their own
MAX_SEEDS = 64  # per generation: the session keeps the images (SD3: 3 MB each)
PAINT_CANVAS = 512  # small models are painted on a NEAREST-upscaled canvas of about this size


# -- errors -----------------------------------------------------------------------------------
def titled(message: str, title: str) -> gr.Error:
    """gr.Error whose text starts with its title. Gradio 6's toast heads every error "Error" and
    shows no title, so the title ("Upload: not possible") goes into the sentence itself."""
    return gr.Error(f"{title} — {message}", title=title)


@contextlib.contextmanager
def user_errors(what: str):
    """Show engine errors to the person as gr.Error; the app keeps running.

    The engine's own errors (ValueError and subclasses, ModelNotFoundError, AdapterError,
    FileNotFoundError) carry a message written for people: show it as is. Anything else is a bug
    or an environment problem: log the traceback and show its type and message.
    """
    from core.adapters import AdapterError
    from core.models.loading import ModelNotFoundError, UnsupportedModelError

    try:
        yield
    except gr.Error:
        raise
    except (ValueError, AdapterError, ModelNotFoundError, UnsupportedModelError, FileNotFoundError,
            FileExistsError) as err:
        raise titled(str(err), title=f"{what}: not possible") from err
    except Exception as err:  # noqa: BLE001 - the UI must survive any failure of one job
        log.exception("%s failed", what)
        raise titled(f"{type(err).__name__}: {err}", title=f"{what} failed") from err


# -- session state (kept in gr.State, one per browser tab / API client) -------------------------
@dataclass
class Flag:
    """One flagged output: the image as generated, and how to make it again."""

    id: str
    prompt: str
    seed: int
    image: Image.Image
    steps: int | None = None
    guidance: float | None = None

    @property
    def label(self) -> str:
        short = self.prompt if len(self.prompt) <= 40 else self.prompt[:37] + "..."
        return f"{self.id}: seed {self.seed} - {short}"


@dataclass
class Session:
    """Per-session studio state: last generation, flags, the active flag, each flag's surrogate."""

    generation: dict | None = None  # {"prompt", "seeds", "images", "steps", "guidance"}
    flags: list[Flag] = field(default_factory=list)
    active: str | None = None  # id of the active flag
    surrogates: dict[str, dict] = field(default_factory=dict)  # flag id -> {"image", "info", "heat", "text"}

    def flag(self, flag_id: str | None = None) -> Flag | None:
        flag_id = flag_id or self.active
        return next((f for f in self.flags if f.id == flag_id), None)

    def require_flag(self) -> Flag:
        f = self.flag()
        if f is None:
            raise titled("No output is flagged yet: generate, then click the bad output in the gallery "
                           "(or type its seed and press Flag).", title="Nothing flagged")
        return f

    def require_surrogate(self) -> dict:
        flag = self.require_flag()
        if flag.id not in self.surrogates:
            raise titled(f"Make a surrogate for {flag.id} first (paint, SDEdit, CLIP edit, flip or noise).",
                           title="No surrogate")
        return self.surrogates[flag.id]


def new_session() -> Session:
    return Session()


# -- cancel tokens of running jobs, per session -------------------------------------------------
class JobRegistry:
    """The CancelToken of each session's running job, so its Stop button can reach it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, object] = {}

    def start(self, key: str, token) -> None:
        with self._lock:
            self._tokens[key] = token

    def finish(self, key: str, token) -> None:
        with self._lock:
            if self._tokens.get(key) is token:
                del self._tokens[key]

    def cancel(self, key: str) -> bool:
        with self._lock:
            token = self._tokens.get(key)
        if token is None:
            return False
        token.cancel()
        return True


def session_key(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "local"


# -- images -----------------------------------------------------------------------------------
def difference(a: Image.Image, b: Image.Image) -> tuple[Image.Image, float]:
    """Heatmap of |a - b| (core's colouring) and the mean absolute difference in [0, 1]."""
    from core.compare import diff_map, heatmap_image

    if a.size != b.size:
        b = b.resize(a.size, Image.LANCZOS)
    d = diff_map(a, b)
    return heatmap_image(d), float(d.mean())


def paint_scale(resolution: int) -> int:
    """Integer upscaling that makes a small model's image paintable (1 for full-size models)."""
    return max(1, PAINT_CANVAS // resolution)


def upscale(img: Image.Image, factor: int) -> Image.Image:
    return img if factor == 1 else img.resize((img.width * factor, img.height * factor), Image.NEAREST)


def to_model_size(img: Image.Image, resolution: int) -> Image.Image:
    """Core's canvas-to-model-size rule (core.surrogates.to_model_size)."""
    from core.surrogates import to_model_size as core_to_model_size

    return core_to_model_size(img, resolution)


# -- files handed to the browser ---------------------------------------------------------------
def serve_copy(path: Path, name: str | None = None) -> str:
    """Copy a file into Gradio's upload folder (always servable) and return the copy's path.

    Run folders stay out of reach of the file route (they are in blocked_paths); only copies of
    what the person asked for are served.
    """
    from gradio.utils import get_upload_folder

    dest = Path(get_upload_folder()) / "studio" / uuid.uuid4().hex[:12]
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / (name or Path(path).name)
    shutil.copyfile(path, target)
    return str(target)


def upload_dir(kind: str) -> Path:
    from gradio.utils import get_upload_folder

    dest = Path(get_upload_folder()) / "studio" / kind / uuid.uuid4().hex[:12]
    dest.mkdir(parents=True, exist_ok=True)
    return dest


def checked(verdict: dict | None, bold: bool = False) -> str:
    """A world checker's verdict and what it saw: 'planted_error (face 3)', 'correct (Ireland)'; '' for none."""
    if not verdict:
        return ""
    v = f"**{verdict['verdict']}**" if bold else verdict["verdict"]
    return f"{v} ({verdict['flag']})" if verdict.get("flag") else v


def fmt(v, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "inf" if not np.isfinite(v) else f"{v:.{digits}g}"
    return str(v)
