"""A simulated GPU fleet for a game day: N nodes x 8 GPUs, a data-parallel job, faults on a timeline, and a
control CLI whose every action costs what docs/troubleshooting/decision.md says it costs.

    python -m handbook.fleet start --timeline practice          # the fleet, its exporters and the job (foreground)
    python -m handbook.fleet status                             # the job and the nodes, as a scheduler shows them
    python -m handbook.fleet exec node03 -- nvidia-smi          # any command "on" a node: its NVML, nvidia-smi, dmesg
    python -m handbook.fleet drain node03                       # cordon, uncordon, drain, reset-gpu, restart-job, replace-node
    python -m handbook.fleet report                             # goodput and GPU-hours lost, from the event log

Each node is the GPU simulator (handbook/gpusim) playing a scenario file the fleet rewrites as the node's GPUs
change, and is watched by the Lab 1 exporter (snippets/labs/lab1/02_gpu_exporter.py) on its own 127.0.0.1 port.
The clock is the wall clock. Everything that happens goes to an append-only event log (events.jsonl), from which
the state can always be rebuilt, and which the grader scores.

Modules: faults (the failure mix and what each fault does), timeline (games: scripted and drawn incidents, the
per-learner seed), engine (the deterministic state machine), nodes (a node's state as a scenario file), daemon
(the wall-clock driver: exporters, HTTP control, job metrics and alert receiver), grade (the score), rules
(Prometheus rule files with their durations compressed for short games).
"""


class FleetError(Exception):
    """Bad input or a refused command; str() is one line saying what is wrong and what to do."""
