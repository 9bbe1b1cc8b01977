"""Save a graph to a folder (text + ``.npz`` weights) and load it back, loss-free."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np

from fpgac.ir.graph import Graph, IRError
from fpgac.ir.printer import encoding_arrays, parse_graph, print_graph

GRAPH_FILE = "graph.fir"
WEIGHTS_FILE = "weights.npz"


def graph_files(graph: Graph) -> dict[str, bytes | Callable[[BinaryIO], None]]:
    """The files that store ``graph``: its text form and its params.

    Params are keyed by position (``p<node index>_<k>``) with an index that maps
    keys back to (node, param) names, because model names may hold characters
    that are not safe as zip member names. The params' archive is a function that
    writes it to a file: made in memory it would be a second copy of the model's
    weights (and a third while ``BytesIO.getvalue`` copies it). It holds the
    params' arrays themselves, not copies.
    """
    arrays: dict[str, np.ndarray] = {}
    index: list[list[str]] = []
    for node in graph.nodes:
        for name, param in node.params.items():
            key = f"p{len(index)}"
            arrays[key] = param.data
            index.append([node.name, name])
            if param.encoding is not None:
                for extra, array in encoding_arrays(name, param.encoding).items():
                    arrays[f"p{len(index)}"] = array
                    index.append([node.name, extra])
    arrays["index"] = np.frombuffer(json.dumps(index).encode(), dtype=np.uint8)

    def write_weights(file: BinaryIO) -> None:
        np.savez(file, allow_pickle=True, **arrays)

    return {GRAPH_FILE: print_graph(graph).encode(), WEIGHTS_FILE: write_weights}


def save_graph(graph: Graph, folder: str | Path) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in graph_files(graph).items():
        with (folder / name).open("wb") as file:
            if isinstance(data, bytes):
                file.write(data)
            else:
                data(file)


def load_graph(folder: str | Path) -> Graph:
    folder = Path(folder)
    text_path, weights_path = folder / GRAPH_FILE, folder / WEIGHTS_FILE
    if not text_path.is_file() or not weights_path.is_file():
        raise IRError(f"{folder}: not a saved fpgac graph (needs {GRAPH_FILE} and {WEIGHTS_FILE})")
    with np.load(weights_path, allow_pickle=False) as npz:
        index = json.loads(bytes(npz["index"]).decode())
        data = {(node, param): npz[f"p{i}"] for i, (node, param) in enumerate(index)}
    return parse_graph(text_path.read_text(), data)
