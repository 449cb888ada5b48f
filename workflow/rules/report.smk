rule report:
    input:
        metrics=expand("reports/effects/{effect}/{arch}/metrics.json", effect=EFFECTS, arch=ARCHS),
        figures=expand(
            "reports/effects/{effect}/{arch}/{figure}.png",
            effect=EFFECTS,
            arch=ARCHS,
            figure=["melspec", "amplitude", "error_spectrum", "loss"],
        ),
        excerpts=expand(
            "reports/effects/{effect}/{arch}/excerpt/{signal}.wav",
            effect=EFFECTS,
            arch=ARCHS,
            signal=["clean", "effect", "model"],
        ),
    output:
        html="reports/index.html",
        csv="reports/metrics.csv",
    params:
        stage_params("report"),
    resources:
        **stage_resources("report"),
    log:
        "logs/report.log",
    shell:
        "deepfx --log {log} report --reports reports"
