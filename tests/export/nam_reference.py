"""Run .nam files through neural-amp-modeler's own loader; executed by the NAM venv's python.

    python nam_reference.py INPUT.npy MODEL.nam [MODEL.nam ...]

For each MODEL.nam, writes MODEL.nam.out.npy (NAM's output for INPUT, zero-padded at the start
as NAM does) and MODEL.nam.json: NAM's receptive field (samples), sample rate (Hz), and how many
of the file's weights NAM's importer reads (its LSTM importer returns no count but raises unless
it used every weight, so a loaded LSTM has read them all).
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch
from nam.models import init_from_nam


def main() -> None:
    torch.set_num_threads(1)
    x = torch.from_numpy(np.load(sys.argv[1]))
    for name in sys.argv[2:]:
        path = Path(name)
        content = json.loads(path.read_text())
        model = init_from_nam(content).eval()
        with torch.no_grad():
            y = model(x, pad_start=True)
        np.save(f"{path}.out.npy", y.numpy())
        read = model.import_weights(torch.Tensor(content["weights"]))
        if content["architecture"] == "LSTM":
            read = len(content["weights"])
        summary = {
            "receptive_field": model.receptive_field,
            "sample_rate": model.sample_rate,
            "weights_read": read,
        }
        Path(f"{path}.json").write_text(json.dumps(summary))


if __name__ == "__main__":
    main()
