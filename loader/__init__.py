"""Reading graph files: YAML/TOML with positions, interpolation, validation, compiling."""

from loader.api import LoadResult, graph_files, load_directory, load_file, load_text
from loader.problems import Problem

__all__ = ["LoadResult", "Problem", "graph_files", "load_directory", "load_file", "load_text"]
