rule train:
    input:
        clean="data/clean",
        processed="data/processed/{effect}",
    output:
        model="models/{effect}/{arch}/model.pt",
        history="models/{effect}/{arch}/history.csv",
    params:
        stage_params("train"),
    threads: config["train"]["threads"]
    resources:
        **stage_resources("train"),
        gpu=int(config["train"]["device"] == "cuda"),
    log:
        "logs/train/{effect}/{arch}.log",
    shell:
        "deepfx --log {log} train --effect {wildcards.effect} --arch {wildcards.arch}"
        " --clean {input.clean} --processed {input.processed}"
        " --out models/{wildcards.effect}/{wildcards.arch}"
