"""``safegrad demo``: a short, self-checking tour of the set geometry and the QP solver.

It builds a batch of random 2-D zonotopic safe sets, projects raw actions onto them with the
batched QP solver, checks the results against the sets' own containment test, takes gradients
through the projection, shoots rays to the boundary, and prints what it measured. Later releases
replace it with training; it stays as the quickest smoke test of an installation.
"""

from __future__ import annotations

import time


def run_demo(device: str = "cpu", seed: int = 0, batch: int = 256) -> int:
    import torch
    from rich.console import Console
    from rich.table import Table

    from safegrad.qp import QPStatus, solve_qp
    from safegrad.sets import Ball, Box, Zonotope

    console = Console()
    dev = torch.device(device)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    dtype = torch.float64

    def rand(*shape):
        return torch.rand(*shape, generator=gen, dtype=dtype).to(dev)

    console.rule("[bold]safegrad demo: sets and the batched QP solver")
    console.print(f"torch {torch.__version__}, device {dev}, dtype {dtype}, batch {batch}")

    # A batch of 2-D zonotopes <c, G> with 6 generators each (spec A §2.2).
    center = 0.2 * (rand(batch, 2) - 0.5)
    generators = 0.6 * (rand(batch, 2, 6) - 0.5)
    zono = Zonotope(center, generators)
    hull = zono.interval_hull()
    hpoly = zono.to_hpolytope()
    console.print(
        f"zonotopes: batch {tuple(zono.batch_shape)}, dim {zono.dim}, 6 generators -> "
        f"H-representation with {hpoly.C.shape[-2]} facets; interval hull half-widths "
        f"in [{(hull.high - hull.low).min().item() / 2:.3f}, "
        f"{(hull.high - hull.low).max().item() / 2:.3f}]"
    )

    # Raw actions, many outside the set; project them (QP) and check.
    raw = 2 * rand(batch, 2) - 1
    raw.requires_grad_(True)
    t0 = time.perf_counter()
    projected = zono.project(raw)
    t_proj = time.perf_counter() - t0
    inside_before = zono.contains(raw.detach()).float().mean().item()
    inside_after = zono.contains(projected.detach(), tol=1e-7).float().mean().item()
    again = zono.project(projected.detach())
    idempotence = (again - projected.detach()).abs().max().item()

    t0 = time.perf_counter()
    projected.pow(2).sum().backward()
    t_back = time.perf_counter() - t0
    grad_ok = bool(torch.isfinite(raw.grad).all())

    # The same projection written directly as a QP through solve_qp (cross-check).
    eye = torch.eye(2, dtype=dtype, device=dev)
    x, info = solve_qp(eye, -raw.detach(), hpoly.C, hpoly.d, return_info=True)
    solver_gap = (x - projected.detach()).abs().max().item()
    solved = (info.status == QPStatus.SOLVED).float().mean().item()

    # Rays from the centre to the boundary, and the closed-form sets.
    direction = rand(batch, 2) - 0.5
    t_ray = zono.ray_distance(center, direction)
    boundary = center + t_ray.unsqueeze(-1) * direction
    on_boundary = zono.contains(boundary, tol=1e-7).float().mean().item()
    beyond = zono.contains(center + 1.001 * t_ray.unsqueeze(-1) * direction).float().mean().item()
    box = Box(-torch.ones(2, dtype=dtype, device=dev), torch.ones(2, dtype=dtype, device=dev))
    ball = Ball(torch.zeros(2, dtype=dtype, device=dev), torch.tensor(0.5, dtype=dtype, device=dev))
    box_in = box.contains(box.project(3 * raw.detach()), tol=1e-12).float().mean().item()
    ball_in = ball.contains(ball.project(3 * raw.detach()), tol=1e-12).float().mean().item()

    table = Table(title="what the demo measured", show_lines=False)
    table.add_column("check")
    table.add_column("value", justify="right")
    table.add_row("raw actions inside the zonotope", f"{inside_before:.1%}")
    table.add_row("projected actions inside (tol 1e-7)", f"{inside_after:.1%}")
    table.add_row("projection idempotence, max |P(P(a)) - P(a)|", f"{idempotence:.1e}")
    table.add_row("projection vs direct solve_qp on the H-rep", f"{solver_gap:.1e}")
    table.add_row("QPs solved", f"{solved:.1%}")
    table.add_row("gradient through the projection finite", str(grad_ok))
    table.add_row("ray end points on the set (tol 1e-7)", f"{on_boundary:.1%}")
    table.add_row("ray end points x1.001 inside (want 0)", f"{beyond:.1%}")
    table.add_row("box / ball projections inside", f"{box_in:.0%} / {ball_in:.0%}")
    table.add_row(f"projection forward, batch {batch}", f"{1e3 * t_proj:.2f} ms")
    table.add_row(f"projection backward, batch {batch}", f"{1e3 * t_back:.2f} ms")
    console.print(table)

    ok = (
        inside_after == 1.0
        and idempotence < 1e-6
        and solver_gap < 1e-6
        and grad_ok
        and on_boundary == 1.0
        and beyond == 0.0
        and box_in == 1.0
        and ball_in == 1.0
    )
    console.print("[green]all checks passed" if ok else "[red]some checks FAILED")
    return 0 if ok else 1
