"""The data: the dataset manifest (import-light, read by stacks/), the public-bucket sources, the vendored sample,
the channel reader, the labels and the transforms. Exports are lazy: importing this package loads no torch."""

from bincount.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "SPLITS": "manifest",
        "ManifestEntry": "manifest",
        "build_manifest": "manifest",
        "load_file_list": "manifest",
        "read_manifest": "manifest",
        "write_manifest": "manifest",
        "build_dataset": "sources",
        "sample_dataset": "sample",
        "ChannelDataset": "channel",
        "DataError": "channel",
        "scan_channel": "channel",
        "load_rgb": "channel",
        "COUNTS": "labels",
        "NUM_CLASSES": "labels",
        "train_transform": "transforms",
        "eval_transform": "transforms",
    },
)
__all__ = __dir__()
