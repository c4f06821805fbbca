// Load a speedscope file into the real speedscope app (its npm package's
// built web app) in headless Chromium, and print what the page shows as
// JSON: the title, the profile names in the profile selector, and the
// sandwich view's rows. Usage: node speedscope.js APP_DIR PROFILE SCREENSHOT
// (playwright-core from NODE_PATH; Chromium at /usr/bin/chromium).
const http = require('http');
const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

const [appDir, profile, shot] = process.argv.slice(2);
const types = { '.html': 'text/html', '.js': 'application/javascript', '.css': 'text/css', '.json': 'application/json',
  '.wasm': 'application/wasm', '.png': 'image/png', '.woff2': 'font/woff2', '.ico': 'image/x-icon', '.txt': 'text/plain' };
const server = http.createServer((req, res) => {
  const p = decodeURIComponent(req.url.split('?')[0]);
  const file = p === '/profile.json' ? profile : path.join(appDir, p === '/' ? 'index.html' : path.normalize(p));
  fs.readFile(file, (err, data) => {
    if (err) { res.writeHead(404); res.end(); return; }
    res.writeHead(200, { 'Content-Type': types[path.extname(file)] || 'application/octet-stream' });
    res.end(data);
  });
});

server.listen(0, '127.0.0.1', async () => {
  const port = server.address().port;
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  let code = 0;
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    const url = `http://127.0.0.1:${port}/index.html#profileURL=${encodeURIComponent(`http://127.0.0.1:${port}/profile.json`)}`;
    await page.goto(url);
    // Loaded when the title names the profile.
    await page.waitForFunction(() => / - speedscope$/.test(document.title), null, { timeout: 30000 });
    const title = await page.title();
    await page.getByText(/Sandwich/).first().click();
    await page.waitForTimeout(500);
    const body = await page.evaluate(() => document.body.innerText);
    await page.screenshot({ path: shot });
    console.log(JSON.stringify({ title, body, errors }));
  } catch (e) {
    console.error(String(e));
    code = 1;
  } finally {
    await browser.close();
    server.close();
    process.exit(code);
  }
});
