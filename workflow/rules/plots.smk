# The baselines (archs); plots_model below runs the same command for each effect's own model.
rule plots:
    input:
        clean="data/clean",
        processed="data/processed/{effect}",
        predictions="reports/effects/{effect}/{arch}/predictions",
        history="models/{effect}/{arch}/history.csv",
        code=stage_code("plots"),
    output:
        melspec="reports/effects/{effect}/{arch}/melspec.png",
        amplitude="reports/effects/{effect}/{arch}/amplitude.png",
        error_spectrum="reports/effects/{effect}/{arch}/error_spectrum.png",
        loss="reports/effects/{effect}/{arch}/loss.png",
        excerpt=multiext("reports/effects/{effect}/{arch}/excerpt/", "clean.wav", "effect.wav", "model.wav"),
    params:
        stage_params("plots"),
    resources:
        **stage_resources("plots"),
    wildcard_constraints:
        arch=BASELINE_ARCHS,
    log:
        "logs/plots/{effect}/{arch}.log",
    shell:
        "deepfx --log {log} plots --effect {wildcards.effect} --arch {wildcards.arch}"
        " --clean {input.clean} --processed {input.processed} --history {input.history}"
        " --out reports/effects/{wildcards.effect}/{wildcards.arch}"


use rule plots as plots_model with:
    params:
        stage_params("plots_model"),
    wildcard_constraints:
        arch=OWN_ARCHS,
