//! The page's own style, arrow markers and script, inline: a report opens from a file with no
//! network at all (its Content-Security-Policy forbids fetching anything).

/// `<head>` items every page shares: the policy and the style sheet.
pub(super) const HEAD: &str = r#"<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 24px 40px; color: #1d2330; background: #fafbfc; }
h1 { font-size: 22px; margin: 18px 0 4px; }
h1 .pass, .pass > h2 .verdict { color: #1a7f37; } h1 .fail, .fail > h2 .verdict { color: #cf222e; }
h2 { font-size: 17px; margin: 0 0 8px; } h3 { font-size: 15px; margin: 14px 0 6px; } h4 { margin: 10px 0 4px; font-size: 13px; text-transform: uppercase; color: #57606a; }
.desc { color: #57606a; white-space: pre-wrap; max-width: 100ch; }
code, pre { font: 12px/1.35 ui-monospace, monospace; } pre { margin: 4px 0; white-space: pre-wrap; }
section.probe { background: #fff; border: 1px solid #d0d7de; border-left: 5px solid #1a7f37; border-radius: 6px; padding: 12px 16px; margin: 16px 0; }
section.probe.fail { border-left-color: #cf222e; }
section.class { border-top: 1px dashed #d0d7de; margin-top: 10px; }
.failure { background: #fff5f5; border: 1px solid #ffc1c0; border-radius: 4px; padding: 8px 10px; margin: 8px 0; }
.failure .what { font-weight: 600; color: #cf222e; } .failure .at code { background: #ffe3e3; padding: 0 4px; }
table.diff th { text-align: left; padding-right: 10px; } tr.expected pre { color: #1a7f37; } tr.observed pre { color: #cf222e; }
table.hops { border-collapse: collapse; margin: 4px 0 8px; } table.hops td, table.hops th { padding: 3px 8px; border-bottom: 1px solid #eaeef2; vertical-align: top; text-align: left; }
tr.hop.point td:nth-child(2) { font-weight: 600; } tr.hop.hook { cursor: pointer; }
tr.hop .rule { color: #57606a; display: none; } tr.hop.show .rule { display: inline; }
tr.hop.tracing { opacity: .55; } .rewrite { color: #8250df; font-size: 12px; }
mark { background: #ffd33d; padding: 0 2px; border-radius: 2px; }
.v-accept td:nth-child(3) .vd, .cell.v-accept rect { color: #1a7f37; fill: #c9f2d3; }
.v-drop td:nth-child(3) .vd, .cell.v-drop rect, .cell.v-reject rect { color: #cf222e; fill: #ffc1c0; }
.v-reject td:nth-child(3) .vd { color: #cf222e; } tr.v-drop { background: #fff0f0; }
.v-nat td:nth-child(3) .vd, .cell.v-nat rect { color: #8250df; fill: #e4d5ff; } tr.v-nat { background: #f7f2ff; }
.v-jump td:nth-child(3) .vd, .cell.v-jump rect { color: #0969da; fill: #cfe4ff; }
.v-return td:nth-child(3) .vd, .cell.v-return rect, .cell.v-continue rect, .cell.v-seen rect, .cell.v-other rect { color: #57606a; fill: #e6e9ed; }
.cell.v-unmet rect { fill: #fff; stroke: #d0d7de; } .cell text { font-size: 11px; } .cell .order { font-weight: 700; }
.hook-box { fill: #f6f8fa; stroke: #8c959f; } .hook-name { font: 600 11px sans-serif; } .layer { font: 600 12px sans-serif; fill: #57606a; }
.flow { stroke: #8c959f; stroke-width: 1.5; } .flow-label { font-size: 10px; fill: #57606a; } .unplaced { font-size: 11px; fill: #cf222e; }
svg text { font-family: ui-monospace, monospace; font-size: 11px; }
.netns rect { fill: #f6f8fa; stroke: #57606a; } .ns-name { font: 700 13px sans-serif; }
.iface .addr { fill: #0a3069; } .iface.bridge .if-name { font-weight: 700; } .dot { fill: #57606a; }
.link { fill: none; stroke: #57606a; stroke-width: 2; } .port { fill: none; stroke: #8c959f; stroke-width: 1.5; }
.journey .step { stroke: #bf3989; stroke-width: 3; opacity: .8; } .badge { fill: #bf3989; } .badge-n { fill: #fff; font: 700 11px sans-serif; text-anchor: middle; }
details { margin: 6px 0; } summary { cursor: pointer; color: #0969da; }
nav a { margin-right: 12px; } .legend span { display: inline-block; padding: 1px 8px; margin-right: 6px; border-radius: 3px; }
.lg-accept { background: #c9f2d3; } .lg-drop { background: #ffc1c0; } .lg-nat { background: #e4d5ff; } .lg-jump { background: #cfe4ff; } .lg-return { background: #e6e9ed; }
table.runs td, table.runs th { padding: 4px 12px; border-bottom: 1px solid #eaeef2; text-align: left; }
td.pass { color: #1a7f37; font-weight: 600; } td.fail, td.error { color: #cf222e; font-weight: 600; } td.skip, td.not-applicable { color: #9a6700; }
</style>"#;

/// The SVG markers the pictures' arrows use, defined once per page.
pub(super) const DEFS: &str = r##"<svg width="0" height="0" style="position:absolute"><defs>
<marker id="arrow" viewBox="0 0 10 10" refX="16" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0 0 L10 5 L0 10 z" fill="#bf3989"/></marker>
<marker id="flow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M0 0 L10 5 L0 10 z" fill="#8c959f"/></marker>
</defs></svg>"##;

/// Clicking a hook's row shows its rule's text; the summary line is counted from the page.
pub(super) const SCRIPT: &str = r#"<script>
document.querySelectorAll('tr.hop.hook').forEach(function (row) {
  row.addEventListener('click', function () { row.classList.toggle('show'); });
});
(function () {
  var probes = document.querySelectorAll('section.probe').length;
  var failed = document.querySelectorAll('section.probe.fail').length;
  var hops = document.querySelectorAll('tr.hop').length;
  var out = document.getElementById('summary');
  if (out) {
    out.textContent = probes + ' probe(s), ' + failed + ' failed, ' + hops + ' hop(s) shown';
    out.setAttribute('data-probes', probes);
    out.setAttribute('data-hops', hops);
  }
})();
</script>"#;
