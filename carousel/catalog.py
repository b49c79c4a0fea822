"""The campaign's files and where they lie on tape, generated from a spec with its seed.

Files are numbered ``0 .. count-1``; every per-file attribute is a list indexed by that
number (plain lists: the simulator reads them millions of times).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from carousel.sizes import format_size
from carousel.spec import CampaignSpec
from idds.errors import SpecError


@dataclass(frozen=True)
class Catalog:
    """The files of a campaign.

    Attributes:
        names: a data identifier per file (``scope:name``, as Rucio names them).
        sizes: bytes per file.
        datasets: the dataset index of each file.
        cartridges: the cartridge each file lies on.
        positions: the byte offset of each file on its cartridge.
        dataset_names: the name of each dataset.
        libraries: the tape library each file is in (empty: all in one).
    """

    names: list[str]
    sizes: list[float]
    datasets: list[int]
    cartridges: list[int]
    positions: list[float]
    dataset_names: list[str]
    libraries: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.sizes)

    @property
    def total_bytes(self) -> float:
        return float(sum(self.sizes))

    @cached_property
    def index(self) -> dict[str, int]:
        """Each file's number by its name."""
        return {name: f for f, name in enumerate(self.names)}

    def dataset_files(self) -> list[list[int]]:
        """The files of each dataset, in file-number order."""
        out: list[list[int]] = [[] for _ in self.dataset_names]
        for f, d in enumerate(self.datasets):
            out[d].append(f)
        return out

    def tape_order(self, files: list[int] | None = None) -> list[int]:
        """``files`` (all by default) sorted by cartridge, then position on it."""
        chosen = range(len(self)) if files is None else files
        return sorted(chosen, key=lambda f: (self.cartridges[f], self.positions[f]))


def build_catalog(spec: CampaignSpec) -> Catalog:
    """Generate the files of ``spec``: log-normal sizes; each dataset split in contiguous
    segments over ``cartridges_per_dataset`` distinct cartridges; each cartridge's segments
    in random order, with other data (the rest of the cartridge) in random gaps between them.

    Raises:
        SpecError: the campaign's bytes do not fit on its cartridges.
    """
    rng = np.random.default_rng(spec.seed)
    fs, libs = spec.files, spec.tape_libraries
    normal = rng.standard_normal(fs.count)
    datasets = np.repeat(np.arange(fs.datasets), _split(fs.count, fs.datasets))
    medians, sigmas = _populations(spec, datasets)
    sizes = medians * np.exp(sigmas * normal)
    library = _libraries(spec)  # of each dataset
    offsets = np.concatenate(([0], np.cumsum([t.cartridges for t in libs])))
    segments = _segments(rng, datasets, library, offsets, [t.cartridges_per_dataset for t in libs])
    cartridges = np.empty(fs.count, dtype=np.int64)
    positions = np.empty(fs.count)
    by_cartridge: dict[int, list[np.ndarray]] = {}
    for cart, files in segments:
        by_cartridge.setdefault(cart, []).append(files)
    for cart, segs in by_cartridge.items():
        capacity = libs[int(np.searchsorted(offsets, cart, side="right")) - 1].cartridge_capacity
        _place(rng, cart, segs, sizes, capacity, cartridges, positions)
    dataset_names = [f"{spec.name}:dataset.{d:05d}" for d in range(fs.datasets)]
    names = [f"{spec.name}:file.{d:05d}.{f:07d}" for f, d in enumerate(datasets.tolist())]
    return Catalog(
        names=names,
        sizes=sizes.tolist(),
        datasets=datasets.tolist(),
        cartridges=cartridges.tolist(),
        positions=positions.tolist(),
        dataset_names=dataset_names,
        libraries=library[datasets].tolist() if len(libs) > 1 else [],
    )


def _libraries(spec: CampaignSpec) -> np.ndarray:
    """Each dataset's tape library: datasets are given to libraries in order, in proportion
    to their cartridge pools."""
    pools = [t.cartridges for t in spec.tape_libraries]
    n = spec.files.datasets
    bounds = np.cumsum(pools) / sum(pools) * n
    return np.minimum(np.searchsorted(bounds, np.arange(n) + 0.5), len(pools) - 1)


def _populations(spec: CampaignSpec, datasets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each file's size median and sigma: its dataset's population's (datasets are given to
    populations in order, in proportion to their shares)."""
    fs = spec.files
    if not fs.populations:
        return np.full(fs.count, fs.size_median), np.full(fs.count, fs.size_sigma)
    bounds = np.cumsum([p.share for p in fs.populations]) * fs.datasets
    of_dataset = np.minimum(np.searchsorted(bounds, np.arange(fs.datasets) + 0.5),
                            len(fs.populations) - 1)  # fmt: skip
    chosen = of_dataset[datasets]
    medians = np.array([p.size_median for p in fs.populations])[chosen]
    sigmas = np.array([p.size_sigma for p in fs.populations])[chosen]
    return medians, sigmas


def _split(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` near-equal whole numbers."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _segments(
    rng: np.random.Generator,
    datasets: np.ndarray,
    library: np.ndarray,
    offsets: np.ndarray,
    per: list[int],
) -> list[tuple[int, np.ndarray]]:
    """(cartridge, files) for each contiguous segment of each dataset, on cartridges of its
    library's pool (library ``k`` numbers its cartridges from ``offsets[k]``)."""
    out = []
    for d, k in enumerate(library.tolist()):
        files = np.flatnonzero(datasets == d)
        pool = int(offsets[k + 1] - offsets[k])
        carts = rng.choice(pool, size=min(per[k], len(files)), replace=False) + offsets[k]
        for cart, seg in zip(carts, np.array_split(files, len(carts)), strict=True):
            out.append((int(cart), seg))
    return out


def _place(
    rng: np.random.Generator,
    cart: int,
    segs: list[np.ndarray],
    sizes: np.ndarray,
    capacity: float,
    cartridges: np.ndarray,
    positions: np.ndarray,
) -> None:
    """Lay a cartridge's segments out in random order with random gaps of other data."""
    used = float(sum(sizes[s].sum() for s in segs))
    if used > capacity:
        raise SpecError(
            f"cartridge {cart} would hold {format_size(used)} of the campaign, more than its "
            f"capacity of {format_size(capacity)}: use more cartridges"
        )
    gaps = rng.dirichlet(np.ones(len(segs) + 1)) * (capacity - used)
    offset = 0.0
    for i, k in enumerate(rng.permutation(len(segs))):
        offset += gaps[i]
        seg = segs[k]
        starts = offset + np.concatenate(([0.0], np.cumsum(sizes[seg])[:-1]))
        cartridges[seg] = cart
        positions[seg] = starts
        offset += float(sizes[seg].sum())
