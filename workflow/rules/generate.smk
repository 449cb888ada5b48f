rule generate:
    input:
        audio=config["generate"]["training_audio"],
        code=stage_code("generate"),
    output:
        directory("data/clean"),
    params:
        stage_params("generate"),
    resources:
        **stage_resources("generate"),
    log:
        "logs/generate.log",
    shell:
        "deepfx --log {log} generate --clean {output}"
