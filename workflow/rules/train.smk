# The baselines (archs); train_model below runs the same command for each effect's own model.
rule train:
    input:
        clean="data/clean",
        processed="data/processed/{effect}",
        code=stage_code("train"),
    output:
        model="models/{effect}/{arch}/model.pt",
        history="models/{effect}/{arch}/history.csv",
    params:
        stage_params("train"),
    threads: config["train"]["threads"]
    resources:
        **stage_resources("train"),
        gpu=int(config["train"]["device"] == "cuda"),
    wildcard_constraints:
        arch=BASELINE_ARCHS,
    log:
        "logs/train/{effect}/{arch}.log",
    shell:
        "deepfx --log {log} train --effect {wildcards.effect} --arch {wildcards.arch}"
        " --clean {input.clean} --processed {input.processed}"
        " --out models/{wildcards.effect}/{wildcards.arch}"


use rule train as train_model with:
    params:
        stage_params("train_model"),
    wildcard_constraints:
        arch=OWN_ARCHS,
