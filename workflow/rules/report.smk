rule report:
    input:
        metrics=expand("reports/effects/{effect}/{arch}/metrics.json", effect=EFFECTS, arch=ARCHS),
        figures=expand(
            "reports/effects/{effect}/{arch}/{figure}.png",
            effect=EFFECTS,
            arch=ARCHS,
            figure=["melspec", "amplitude", "loss"],
        ),
    output:
        html="reports/index.html",
        csv="reports/metrics.csv",
    params:
        stage_params("report"),
    log:
        "logs/report.log",
    shell:
        "deepfx --log {log} report --reports reports"
