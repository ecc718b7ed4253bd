"""tvdim: Text-enhanced Visual Deep InfoMax — pretrain image encoders from noisy image-text pairs."""
from .api import embed_images, embed_texts, load_encoder, load_method, load_model, load_text_encoder
from .config import Config, load_config
from .eval.evaluate import evaluate
from .hub import TvdimModel, export_checkpoint, from_pretrained
from .methods import build_method
from .train.trainer import pretrain

__version__ = "0.1.0"
__all__ = ["Config", "load_config", "build_method", "pretrain", "evaluate", "load_method", "load_encoder",
           "load_text_encoder", "load_model", "embed_images", "embed_texts", "from_pretrained", "export_checkpoint",
           "TvdimModel", "__version__"]
