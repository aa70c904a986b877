// The cluster page served by every node at /admin (docs/PROTOCOL.md, "GET /admin").
import 'uplot/dist/uPlot.min.css';
import './admin.css';
import { html, render } from 'htm/preact';
import { adoptTokenFromUrl } from './api.ts';
import { App } from './app.ts';

adoptTokenFromUrl();
render(html`<${App} />`, document.getElementById('app')!);
