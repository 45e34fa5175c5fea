"""The toolkit's version, recorded in every HDF5 file and result file."""

__version__ = "0.1.0"
