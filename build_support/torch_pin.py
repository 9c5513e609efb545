"""scikit-build-core metadata provider: pin the torch this wheel is compiled against.

prismkit's compiled library links against libtorch, whose C++ ABI changes between
releases, so a wheel built with torch X.Y.Z only works with torch X.Y.Z. The build runs
without isolation (`pip install --no-build-isolation`), so the torch imported here is the
one the extension is compiled against.
"""

from importlib.metadata import version


def dynamic_metadata(field, settings=None):
    if field != "dependencies":
        raise ValueError(f"torch_pin only provides 'dependencies', not {field!r}")
    # prismkit.sae saves checkpoints with safetensors, shows progress with tqdm, and reads cached
    # activations with numpy's memory maps; prismkit.splat reads and writes .ply files with plyfile
    # and PNG images with Pillow.
    return [f"torch=={version('torch')}", "safetensors>=0.4", "tqdm", "numpy", "plyfile", "pillow"]
