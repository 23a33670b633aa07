"""Task lists shared by the env tests."""

ALL_TASKS = (
    "BalancePendulum-v0",
    "BalanceQuadrotor-v0",
    "ManageHousehold-v0",
    "BalanceCartPole-v0",
    "SwingUpCartPole-v0",
    "NavigateSeeker-v0",
    "ReachAvoid-v0",
)
RENDERABLE = tuple(t for t in ALL_TASKS if t != "ManageHousehold-v0")
