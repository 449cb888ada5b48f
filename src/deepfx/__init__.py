"""deepfx: learn audio effects from examples."""

__all__ = ["__version__", "SAMPLE_RATE"]

__version__ = "0.1.0"

#: The project's working sample rate (Hz); every clean and processed file is written at it.
SAMPLE_RATE = 44_100
