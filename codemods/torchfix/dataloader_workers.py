"""TFM709: ``DataLoader`` loading in the main process (no ``num_workers``); off by default."""

from __future__ import annotations

import ast

from torchfix_mod.codemods.torchfix._api import argument, calls_to, has_star_args, has_star_kwargs, is_zero, value_of
from torchfix_mod.rule import Applicability, KeepCase, Rule

DATALOADER = frozenset({"torch.utils.data.DataLoader", "torch.utils.data.dataloader.DataLoader"})
NUM_WORKERS_POSITION = 5  # DataLoader(dataset, batch_size, shuffle, sampler, batch_sampler, num_workers, ...)


class DataLoaderNumWorkersRule(Rule):
    """
    ## What it does
    Reports `torch.utils.data.DataLoader(...)` calls without `num_workers`
    or with `num_workers=0`. Off by default: select it with
    `--select TFM709` (or `extend-select`). TorchFix reports the same as
    TOR401, also off by default there.

    ## Why is this bad?
    With `num_workers=0` (the default) every batch is loaded and collated in
    the training process, between steps: the GPU waits for the data. Worker
    processes prepare the next batches while the model computes. This is the
    pattern `torch.profiler` calls a "synchronized data loader".

    ## Example
    ```python
    loader = DataLoader(train_set, batch_size=64, shuffle=True)
    ```

    ## Use instead
    ```python
    loader = DataLoader(train_set, batch_size=64, shuffle=True, num_workers=4)
    ```

    ## Fix safety
    No fix: the right number of workers depends on the machine and the data,
    and workers change behaviour (datasets are pickled into each process,
    random state and open files per worker, `if __name__ == "__main__"`
    needed on spawn platforms). Report only.

    ## Known problems
    Loading in the main process is often right: tiny in-memory datasets,
    tests, evaluation scripts, data already on the GPU, debugging. That is
    why the rule is off by default. Calls that unpack `*args`/`**kwargs` are
    not reported (they may set `num_workers`).
    """

    code = "TFM709"
    name = "dataloader-num-workers"
    summary = "DataLoader without num_workers loads batches in the training loop's process (TorchFix TOR401)"
    applicability = Applicability.DISPLAY_ONLY
    default_enabled = False

    fixes = ()
    keeps = (
        KeepCase(
            "from torch.utils.data import DataLoader\n\nloader = DataLoader(train_set, batch_size=64, shuffle=True)\n",
            reported=True,
        ),
        KeepCase("import torch\n\nloader = torch.utils.data.DataLoader(ds, num_workers=0)\n", reported=True),
        KeepCase("from torch.utils.data import DataLoader\n\nloader = DataLoader(ds, 32, True, None, None, 0)\n", reported=True),
        KeepCase("from torch.utils.data import DataLoader\n\nloader = DataLoader(ds, num_workers=4)\n"),
        KeepCase("from torch.utils.data import DataLoader\n\nloader = DataLoader(ds, num_workers=args.workers)\n"),
        KeepCase("from torch.utils.data import DataLoader\n\nloader = DataLoader(ds, **loader_kwargs)\n"),
        KeepCase("from mylib import DataLoader\n\nloader = DataLoader(ds)\n"),
    )

    def check(self) -> None:
        model = self.model
        for node, _ in calls_to(model, DATALOADER):
            if has_star_args(node) or has_star_kwargs(node):
                continue
            workers = argument(node, "num_workers", NUM_WORKERS_POSITION)
            if workers is not None and not is_zero(model, value_of(workers)):
                continue
            self.report(
                node,
                "`DataLoader` loads every batch in the training process (`num_workers=0`); "
                "set `num_workers` > 0 to load in parallel with the training step",
            )
