rule process:
    input:
        clean="data/clean",
        code=stage_code("process"),
    output:
        directory("data/processed/{effect}"),
    params:
        stage_params("process"),
    resources:
        **stage_resources("process"),
    log:
        "logs/process/{effect}.log",
    shell:
        "deepfx --log {log} process --effect {wildcards.effect} --clean {input.clean} --out {output}"
