"""Serve every flow as a deployment named ``<flow>/local`` against the configured Prefect API.

``python -m flows serve`` (or ``python -m flows.serve``) blocks and runs flow runs as they are
requested (``prefect deployment run build-amass/local -p 'config={"amass_root": ...}'``, or the UI form).
"""

from __future__ import annotations

DEPLOYMENT = "local"
FLOW_NAMES = ["build-amass", "build-h36m", "pretrain", "finetune", "evaluate", "infer"]
DEPLOYMENT_NAMES = [f"{f}/{DEPLOYMENT}" for f in FLOW_NAMES]


def all_flows() -> list:
    from flows.build_amass import build_amass_flow
    from flows.build_h36m import build_h36m_flow
    from flows.evaluate import evaluate_flow
    from flows.infer import infer_flow
    from flows.training import finetune_flow, pretrain_flow

    flows = [build_amass_flow, build_h36m_flow, pretrain_flow, finetune_flow, evaluate_flow, infer_flow]
    assert [f.name for f in flows] == FLOW_NAMES
    return flows


def deployments() -> list:
    """One RunnerDeployment per flow; entrypoints are module paths so any cwd with the package installed works."""
    from prefect.deployments.runner import EntrypointType

    return [f.to_deployment(name=DEPLOYMENT, tags=["mocap-corpus"], entrypoint_type=EntrypointType.MODULE_PATH,
                            description=(f.description or "").strip().split("\n")[0])
            for f in all_flows()]


def serve(limit: int | None = None) -> None:
    """Block serving every deployment (Ctrl-C / SIGTERM stops it)."""
    from prefect import serve as prefect_serve

    from flows.logs import install_log_filters

    install_log_filters()  # this process's; each flow run installs them in its own (``fail_with_reason``)
    prefect_serve(*deployments(), limit=limit, pause_on_shutdown=False)


if __name__ == "__main__":
    serve()
