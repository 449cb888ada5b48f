# The baselines (archs); evaluate_model below runs the same command for each effect's own model.
rule evaluate:
    input:
        model="models/{effect}/{arch}/model.pt",
        clean="data/clean",
        processed="data/processed/{effect}",
        code=stage_code("evaluate"),
    output:
        metrics="reports/effects/{effect}/{arch}/metrics.json",
        predictions=directory("reports/effects/{effect}/{arch}/predictions"),
    params:
        stage_params("evaluate"),
    resources:
        **stage_resources("evaluate"),
    wildcard_constraints:
        arch=BASELINE_ARCHS,
    log:
        "logs/evaluate/{effect}/{arch}.log",
    shell:
        "deepfx --log {log} evaluate --effect {wildcards.effect} --arch {wildcards.arch}"
        " --model {input.model} --clean {input.clean} --processed {input.processed}"
        " --out reports/effects/{wildcards.effect}/{wildcards.arch}"


use rule evaluate as evaluate_model with:
    params:
        stage_params("evaluate_model"),
    wildcard_constraints:
        arch=OWN_ARCHS,
