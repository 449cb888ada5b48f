rule generate:
    input:
        config["generate"]["training_audio"],
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
