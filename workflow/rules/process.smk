rule process:
    input:
        "data/clean",
    output:
        directory("data/processed/{effect}"),
    params:
        stage_params("process"),
    resources:
        **stage_resources("process"),
    log:
        "logs/process/{effect}.log",
    shell:
        "deepfx --log {log} process --effect {wildcards.effect} --clean {input} --out {output}"
