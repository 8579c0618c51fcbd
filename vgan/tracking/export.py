"""The generator as an MLflow model: the pytorch flavour (torch.export "pt2", else pickle with vgan's code)
wrapped in a pyfunc model (``pyfunc_model.py``, logged as code) that turns seeds into uint8 videos."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

MODEL_ARTIFACT = "generator"


def _pip_requirements() -> list[str]:
    import mlflow
    import numpy
    import pandas
    import torch

    return [f"mlflow=={mlflow.__version__}", f"torch=={torch.__version__.split('+')[0]}",
            f"numpy=={numpy.__version__}", f"pandas=={pandas.__version__}"]


def _save_torch_generator(generator, folder: Path) -> str:
    """Save G with the pytorch flavour: torch.export ("pt2") where it works, else pickle with vgan code."""
    import mlflow.pytorch
    import numpy as np
    import torch
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    generator = generator.cpu().eval()
    example_z = generator.sample_z(2, generator=torch.Generator().manual_seed(0))
    example = [example_z]
    inputs = [TensorSpec(np.dtype(np.float32), (-1, generator.latent_dim), "z")]
    if generator.num_classes:
        example.append(torch.tensor([0, min(1, generator.num_classes - 1)], dtype=torch.int64))
        inputs.append(TensorSpec(np.dtype(np.int64), (-1,), "y"))
    with torch.no_grad():
        out = generator(*example)
    signature = ModelSignature(inputs=Schema(inputs),
                               outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *out.shape[1:]), "video")]))
    numpy_example = tuple(t.numpy() for t in example)
    try:
        mlflow.pytorch.save_model(generator, str(folder / "pt2"), serialization_format="pt2",
                                  input_example=numpy_example, signature=signature,
                                  pip_requirements=_pip_requirements())
        return str(folder / "pt2")
    except Exception:  # noqa: BLE001 - any export failure: fall back to the portable pickle
        package_dir = Path(__file__).resolve().parents[1]  # vgan/
        mlflow.pytorch.save_model(generator, str(folder / "pickle"), serialization_format="pickle",
                                  code_paths=[str(package_dir)], input_example=numpy_example[0]
                                  if len(numpy_example) == 1 else None,
                                  signature=signature, pip_requirements=_pip_requirements())
        return str(folder / "pickle")


def log_generator_model(generator, metadata: dict):
    """Log the pyfunc model (seeds -> uint8 videos) wrapping the pytorch-flavour generator."""
    import mlflow
    import numpy as np
    import pandas as pd
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    with tempfile.TemporaryDirectory(prefix="vgan-model-") as tmp:
        torch_dir = _save_torch_generator(generator, Path(tmp))
        serialization = Path(torch_dir).name
        spec = {"latent_dim": generator.latent_dim, "num_classes": generator.num_classes, "frames": generator.frames,
                "resolution": generator.resolution, "channels": generator.channels,
                "serialization": serialization, **metadata}
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps(spec, indent=2))
        columns = [ColSpec("long", "seed")]
        example = {"seed": [0, 1]}
        if generator.num_classes:
            columns.append(ColSpec("long", "label", required=False))
            example["label"] = [0, min(1, generator.num_classes - 1)]
        # RGB whatever the generator paints (pyfunc_model.py widens a grey model's channel); "channels" above is the
        # generator's own
        out_shape = (-1, generator.frames, generator.resolution, generator.resolution, 3)
        signature = ModelSignature(inputs=Schema(columns),
                                   outputs=Schema([TensorSpec(np.dtype(np.uint8), out_shape)]))
        model_info = mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT,
            python_model=str(Path(__file__).with_name("pyfunc_model.py")),
            artifacts={"generator": torch_dir, "spec": str(spec_path)},
            signature=signature,
            input_example=pd.DataFrame(example),
            pip_requirements=_pip_requirements(),
            metadata={"vgan": spec},
        )
    return model_info, serialization
