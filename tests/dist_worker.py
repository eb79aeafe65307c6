"""Worker for the 2-process distributed test: run with torchrun --nproc_per_node 2."""

import hashlib
import sys
from pathlib import Path

import torch

from engine_fixtures import MaskedMSE, recorruption_datasets, tiny_network
from medden.engines import build_evaluator, build_trainer, cleanup, default_device, init_distributed, make_loader, wrap_ddp


def main(out_dir: str) -> None:
    distributed = init_distributed()
    rank = torch.distributed.get_rank() if distributed else 0
    train, val = recorruption_datasets()
    device = default_device()
    network = wrap_ddp(tiny_network(), device)
    optimizer = torch.optim.Adam(network.parameters(), 1e-2)
    evaluator = build_evaluator(network, make_loader(val, 4, shuffle=False), device)
    trainer = build_trainer(network, optimizer, MaskedMSE(), make_loader(train, 4, shuffle=True), max_epochs=2,
                            output_dir=out_dir, device=device, evaluator=evaluator, progress_bar=False)
    trainer.run()
    weights = b"".join(p.detach().cpu().numpy().tobytes() for p in network.parameters())
    Path(out_dir, f"rank{rank}.txt").write_text(
        f"{int(distributed)} {torch.distributed.get_world_size() if distributed else 1} "
        f"{trainer.state.iteration} {hashlib.sha256(weights).hexdigest()} {evaluator.state.metrics['val_psnr']}\n")
    cleanup(wait_for_all=True)


if __name__ == "__main__":
    main(sys.argv[1])
