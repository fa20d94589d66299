// report.md and report.html from results.json alone (never by measuring again); report-table.ts has what both say,
// report-html.ts draws the HTML. A failure is told once per cause: the cells it stops, the cause, the fix that
// follows from it (causes.ts), then the other findings and the raw logs folded.
import path from 'node:path';
import { writeFileAtomicSafe } from '../io/files.js';
import { headline } from './analyse.js';
import { failureGroups, rawLog } from './causes.js';
import { renderHtml } from './report-html.js';
import { studyRows } from './report-study.js';
import { db, groupSettings, machineLine, modelLine, tableRows } from './report-table.js';
import type { LabResults } from './types.js';

export { renderHtml } from './report-html.js';

const md = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
/** A code span that survives backticks inside. */
const code = (s: string): string => (s.includes('`') ? `\`\` ${s} \`\`` : `\`${s}\``);

function failuresMarkdown(res: LabResults): string[] {
  const groups = failureGroups(res);
  if (!groups.length) return [];
  const lines = ['## Failures', ''];
  for (const g of groups) {
    lines.push(
      `### ${g.cells.map((c) => c.id).join(', ')}: ${g.cells.length > 1 ? 'fail' : 'fails'} at ${g.stage}`,
      '',
    );
    lines.push(
      `Cause: ${md(g.cause.cause)}`,
      '',
      `Fix: ${g.cause.fix ? code(g.cause.fix) : "none known: the raw log below has the process's own words"}`,
      '',
    );
    for (const e of g.elsewhere)
      lines.push(
        `On a GPU host, this install's missing provider files also need: ${code(e.fix)}${e.cells.length < g.cells.length ? ` (${e.cells.join(', ')})` : ''}`,
        '',
      );
    const settings = groupSettings(res, g);
    if (settings.length)
      lines.push('Settings where they differ from the reference:', '', ...settings.map((s) => `- ${md(s)}`), '');
    if (g.also.length) {
      lines.push(
        `<details><summary>${g.also.length} more ${g.also.length === 1 ? 'finding' : 'findings'}</summary>`,
        '',
      );
      for (const a of g.also)
        lines.push(
          `- ${md(a.finding.message)}${a.finding.fix ? ` — fix: ${code(a.finding.fix)}` : ''}${a.cells.length < g.cells.length ? ` (${a.cells.join(', ')})` : ''}`,
        );
      lines.push('', '</details>', '');
    }
    for (const c of g.cells)
      lines.push(`<details><summary>raw log: ${c.id}</summary>`, '', '```', rawLog(c), '```', '', '</details>', '');
  }
  return lines;
}

export function renderMarkdown(res: LabResults): string {
  const cs = res.cells;
  const { model, notice } = modelLine(res);
  const lines: string[] = [
    `# gpen-lab compatibility report${res.config.name ? `: ${res.config.name}` : ''}`,
    '',
    `**${headline(res)}**`,
    '',
    `Started ${res.startedAt}${res.finishedAt ? `, finished ${res.finishedAt}` : ' (not finished)'}. ${machineLine(res)}`,
    `Model: ${model}; ${res.config.coldRuns} fresh processes per cell, ${res.config.warmRuns} warm runs in the last. Times are medians (min … max and every raw timing in results.json). Reference: ${res.reference ?? 'none (no cell passed)'}.`,
    '',
    ...(notice ? [`> ${notice}`, ''] : []),
    '## At a glance',
    '',
    `| | ${cs.map((c) => c.id).join(' | ')} |`,
    `|---|${cs.map(() => '---').join('|')}|`,
    ...studyRows(res).map(([name, vals]) => `| ${md(name)} | ${vals.map(md).join(' | ')} |`),
    '',
    '## Every dimension',
    '',
    `| | ${cs.map((c) => c.id).join(' | ')} |`,
    `|---|${cs.map(() => '---').join('|')}|`,
    ...tableRows(res).map(([name, vals]) => `| ${md(name)} | ${vals.map(md).join(' | ')} |`),
    '',
    ...failuresMarkdown(res),
  ];
  if (res.pairs.length) {
    lines.push(
      '## Agreement between passing cells',
      '',
      '| a | b | PSNR | SSIM |',
      '|---|---|---|---|',
      ...res.pairs.map((p) => `| ${p.a} | ${p.b} | ${db(p.psnr)} dB | ${p.ssim.toFixed(4)} |`),
      '',
    );
  }
  lines.push('## Recommendations (median times)', '', ...res.recommendations.map((r) => `- ${md(r)}`), '');
  return lines.join('\n');
}

export async function writeReport(res: LabResults, outDir: string): Promise<{ md: string; html: string }> {
  const mdFile = path.join(outDir, 'report.md');
  const htmlFile = path.join(outDir, 'report.html');
  await writeFileAtomicSafe(mdFile, renderMarkdown(res));
  await writeFileAtomicSafe(htmlFile, await renderHtml(res, outDir));
  return { md: mdFile, html: htmlFile };
}
