# deepfx — the DAG. One job per stage × effect × model (the baselines in `archs` and the
# effect's own model); rules live in workflow/rules/ by stage.
# Run:  snakemake --cores N            (workstation)
#       snakemake --workflow-profile workflow/profiles/slurm   (cluster)
# dvc.yaml runs the very same jobs; see README "Two engines, one DAG".
from snakemake.utils import min_version

min_version("9.0")


configfile: "params.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/process.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/plots.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        "reports/index.html",
        "reports/metrics.csv",


# Hand-over: dvc.lock records what this run produced (workflow/rules/common.smk).
onsuccess:
    hand_over_to_dvc(workflow.dag)


onerror:
    hand_over_to_dvc(workflow.dag)
