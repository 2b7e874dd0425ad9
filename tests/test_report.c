/* mambaq report end to end through the CLI: calib (a few short windows) -> quantize -> verify (CPU
 * simulation) -> report on mamba1-proxy; mamba2-proxy calibrated with the quamba transforms (y and
 * H y); a synthetic 128-layer stats file; the bad inputs (missing stats, another model's artifact,
 * broken verify JSON: clear error, non-zero exit, no file left). Every page goes through a strict
 * XML well-formedness check (the page is XHTML-compatible HTML5), and, where Debian's chromium is
 * installed, is rendered headless to a PNG that must not be blank, with no console message.
 * Needs bin/mambaq (make bin/mambaq) and ../shared. */
#include <ctype.h>
#include <sys/wait.h>
#include <zlib.h>
#include "calib/calib.h"
#include "calib/obs.h"
#include "core/err.h"
#include "core/st.h"
#include "quantize/cstats.h"
#include "tests/cli_run.h"
#include "tests/test.h"

/* ---- a strict well-formedness checker: XML rules on the whole page ---- */

typedef struct {
    int elements, svg, details, table, path, figure;
    int ids_layer;              /* id="layer-N" attributes */
    int external;               /* src= or href= not starting with '#', <script>, <link>, <iframe>, <object> */
    char err[256];
} xml_info;

static int xml_fail(xml_info *x, const char *doc, const char *p, const char *what) {
    int line = 1;
    for (const char *q = doc; q < p; q++) line += *q == '\n';
    snprintf(x->err, sizeof x->err, "line %d: %s near \"%.40s\"", line, what, p);
    return -1;
}

static int name_char(char c) { return isalnum((unsigned char)c) || c == '-' || c == '_' || c == ':' || c == '.'; }

/* Is p ("&...") one of &amp; &lt; &gt; &quot; &apos; &#N; &#xH;? *end: just after it. */
static int entity(const char *p, const char **end) {
    static const char *named[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
        if (!strncmp(p, named[i], strlen(named[i]))) { *end = p + strlen(named[i]); return 1; }
    if (p[1] != '#') return 0;
    const char *e = p + 2, *d;
    int hex = *e == 'x';
    for (d = e += hex; hex ? isxdigit((unsigned char)*e) : isdigit((unsigned char)*e); e++) {}
    if (e == d || *e != ';') return 0;
    *end = e + 1;
    return 1;
}

/* Text (or an attribute value up to `quote`): every & starts an entity, no raw <, and (text only)
 * no raw >. Returns the end (the '<' or the quote), NULL on an error. */
static const char *xml_text(xml_info *x, const char *doc, const char *p, char quote) {
    while (*p && *p != (quote ? quote : '<')) {
        const char *e;
        if (*p == '&') {
            if (!entity(p, &e)) { xml_fail(x, doc, p, "unescaped &"); return NULL; }
            p = e;
            continue;
        }
        if (*p == '<') { xml_fail(x, doc, p, "raw < in an attribute"); return NULL; }
        if (*p == '>' && !quote) { xml_fail(x, doc, p, "raw > in text"); return NULL; }
        p++;
    }
    return p;
}

static int geometry(const char *attr) {
    static const char *names[] = {"x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "width", "height", "d", "viewBox", "transform"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(attr, names[i])) return 1;
    return 0;
}

static int xml_check(const char *doc, xml_info *x) {
    memset(x, 0, sizeof *x);
    for (const unsigned char *u = (const unsigned char *)doc; *u;) {   /* UTF-8 throughout */
        int n = *u < 0x80 ? 1 : (*u & 0xe0) == 0xc0 && *u >= 0xc2 ? 2 : (*u & 0xf0) == 0xe0 ? 3 : (*u & 0xf8) == 0xf0 ? 4 : 0;
        for (int i = 1; i < n; i++)
            if ((u[i] & 0xc0) != 0x80) n = 0;
        if (!n) return xml_fail(x, doc, (const char *)u, "not UTF-8");
        u += n;
    }
    const char *p = doc;
    if (!strncmp(p, "<!DOCTYPE html>", 15)) p += 15;
    else return xml_fail(x, doc, p, "no <!DOCTYPE html>");
    char stack[256][32];
    int depth = 0, roots = 0;
    while (*p) {
        if (*p != '<') {
            if (depth == 0 && !isspace((unsigned char)*p)) return xml_fail(x, doc, p, "text outside the root element");
            if (!(p = xml_text(x, doc, p, 0))) return -1;
            continue;
        }
        if (!strncmp(p, "<!--", 4)) {
            const char *e = strstr(p + 4, "-->");
            if (!e) return xml_fail(x, doc, p, "unclosed comment");
            p = e + 3;
            continue;
        }
        int closing = p[1] == '/';
        const char *n = p + 1 + closing, *e = n;
        while (name_char(*e)) e++;
        if (e == n || !isalpha((unsigned char)*n)) return xml_fail(x, doc, p, "bad tag name");
        char name[32];
        snprintf(name, sizeof name, "%.*s", (int)(e - n), n);
        if (closing) {
            while (isspace((unsigned char)*e)) e++;
            if (*e != '>') return xml_fail(x, doc, p, "bad closing tag");
            if (depth == 0 || strcmp(stack[depth - 1], name)) return xml_fail(x, doc, p, depth ? "closing tag does not match the open element" : "closing tag without an open element");
            depth--;
            p = e + 1;
            continue;
        }
        if (depth == 0 && roots++) return xml_fail(x, doc, p, "a second root element");
        x->elements++;
        x->svg += !strcmp(name, "svg"), x->details += !strcmp(name, "details"), x->table += !strcmp(name, "table");
        x->path += !strcmp(name, "path"), x->figure += !strcmp(name, "figure");
        if (!strcmp(name, "script") || !strcmp(name, "link") || !strcmp(name, "iframe") || !strcmp(name, "object")) x->external++;
        /* attributes: name="value" or name='value', no duplicates */
        char seen[16][32];
        int nseen = 0;
        p = e;
        for (;;) {
            const char *s = p;
            while (isspace((unsigned char)*p)) p++;
            if (*p == '>' || (p[0] == '/' && p[1] == '>')) break;
            if (p == s) return xml_fail(x, doc, p, "no space before an attribute");
            const char *an = p;
            while (name_char(*p)) p++;
            if (p == an) return xml_fail(x, doc, p, "bad attribute name");
            char attr[32];
            snprintf(attr, sizeof attr, "%.*s", (int)(p - an), an);
            for (int i = 0; i < nseen; i++)
                if (!strcmp(seen[i], attr)) return xml_fail(x, doc, an, "duplicate attribute");
            if (nseen < 16) snprintf(seen[nseen++], sizeof seen[0], "%s", attr);
            if (*p != '=' || (p[1] != '"' && p[1] != '\'')) return xml_fail(x, doc, an, "attribute without a quoted value");
            char q = p[1];
            const char *v = p + 2;
            if (!(p = xml_text(x, doc, v, q))) return -1;
            if (*p != q) return xml_fail(x, doc, an, "unterminated attribute value");
            if ((!strcmp(attr, "href") || !strcmp(attr, "src")) && *v != '#') x->external++;
            if (geometry(attr))
                for (const char *c = v; c < p; c++)   /* geometry: numbers only, no nan / inf from a bad value */
                    if (isalpha((unsigned char)*c) && strchr("nNiI", *c) && (c == v || !isalpha((unsigned char)c[-1])))
                        return xml_fail(x, doc, an, "nan or inf in a geometry attribute");
            if (!strcmp(attr, "id") && !strncmp(v, "layer-", 6)) x->ids_layer++;
            p++;
        }
        if (*p == '/') p += 2;   /* self-closed */
        else {
            if (depth == 256) return xml_fail(x, doc, p, "nesting too deep");
            snprintf(stack[depth++], sizeof stack[0], "%s", name);
            p++;
            if (!strcmp(name, "style")) {   /* CSS: checked as text (no < > &) */
                if (!(p = xml_text(x, doc, p, 0))) return -1;
            }
        }
    }
    if (depth) return xml_fail(x, doc, p, "unclosed element at the end");
    if (!roots) return xml_fail(x, doc, p, "no root element");
    return 0;
}

static void test_checker(void) {
    static const char *bad[] = {
        "<!DOCTYPE html><html><p>a</html>",                  /* mismatched */
        "<!DOCTYPE html><html><p class=x>a</p></html>",      /* unquoted attribute */
        "<!DOCTYPE html><html><p>a & b</p></html>",          /* raw & */
        "<!DOCTYPE html><html><p>a > b</p></html>",          /* raw > */
        "<!DOCTYPE html><html><svg><rect/></html>",          /* svg not closed */
        "<!DOCTYPE html><html><meta charset=\"utf-8\"></html>", /* void element not self-closed */
        "<!DOCTYPE html><html><p a=\"1\" a=\"2\"></p></html>", /* duplicate attribute */
        "<html></html>",                                     /* no doctype */
        "<!DOCTYPE html><html></html><html></html>",         /* two roots */
    };
    xml_info x;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) T_CHECK(xml_check(bad[i], &x) != 0, "accepted: %s", bad[i]);
    T_CHECK(xml_check("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/></head><body><p>a &amp; b &lt;c&gt; &#39;"
                      "</p><svg><path d=\"M0 0\"/></svg><!-- c --></body></html>\n", &x) == 0, "rejected a good page: %s", x.err);
    T_CHECK(x.svg == 1 && x.path == 1, "counts");
    T_CHECK(xml_check("<!DOCTYPE html><html><svg><rect x=\"nan\" width=\"1\"/></svg></html>", &x) != 0, "nan coordinate accepted");
    T_CHECK(xml_check("<!DOCTYPE html><html><svg><path d=\"M0 0V-inf\"/></svg></html>", &x) != 0, "inf in a path accepted");
    T_CHECK(xml_check("<!DOCTYPE html><html><p>\xff</p></html>", &x) != 0, "invalid UTF-8 accepted");
}

/* ---- running the CLI ---- */

static int count(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* Checks every page must pass; returns the page (caller frees) or NULL. */
static char *check_page(const char *path, int n_layer) {
    char *html = mq_read_file(path, NULL);
    T_CHECK(html != NULL, "%s not written: %s", path, mq_errmsg());
    if (!html) return NULL;
    xml_info x;
    T_CHECK(xml_check(html, &x) == 0, "%s is not well-formed: %s", path, x.err);
    T_CHECK(x.external == 0, "%s: %d references outside the page (script, link, src, href not #...)", path, x.external);
    T_CHECK(strstr(html, "id=\"summary\"") && strstr(html, "<table class=\"kv\">"), "%s: no summary table", path);
    T_CHECK(x.ids_layer == n_layer + 1, "%s: %d id=\"layer-*\" sections, expected %d layers + lm_head", path, x.ids_layer, n_layer);
    for (int l = 0; l < n_layer; l++) {
        char id[32];
        snprintf(id, sizeof id, "<details id=\"layer-%d\"", l);
        if (count(html, id) != 1) { T_CHECK(0, "%s: section of layer %d appears %d times", path, l, count(html, id)); break; }
    }
    T_CHECK(x.details == n_layer + 1, "%s: %d <details>, expected %d", path, x.details, n_layer + 1);
    /* one histogram per activation and per layer at least, each a path with many steps */
    T_CHECK(x.svg >= n_layer * 8 && x.path >= n_layer * 8, "%s: %d svg, %d path", path, x.svg, x.path);
    T_CHECK(count(html, "class=\"bars\"") >= n_layer * 8, "%s: %d histograms", path, count(html, "class=\"bars\""));
    T_CHECK(count(html, "V") > n_layer * 8 * 40, "%s: histograms without steps", path);
    T_CHECK(count(html, "class=\"mlab\">clip ") >= n_layer * 4, "%s: %d clip markers, expected at least 4 per layer", path,
            count(html, "class=\"mlab\">clip "));
    T_CHECK(count(html, "(EMA p99.999)") >= n_layer, "%s: the percentile clip of the SSM input is not marked in every layer", path);
    T_CHECK(count(html, "class=\"cell\"") >= 2 * n_layer * 4, "%s: heat maps missing", path);
    printf("    %s: %zu kB, %d elements, %d svg\n", path, strlen(html) / 1000, x.elements, x.svg);
    return html;
}

/* ---- headless chromium: render to PNG, decode it, look for ink ---- */

static uint32_t be32(const unsigned char *p) { return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]; }

/* Share of pixels that differ from the top-left one, and the number of rows holding any; -1 when
 * the PNG is unreadable (8-bit RGB/RGBA, not interlaced: what chromium writes). */
static double png_ink(const char *path, int *rows_with_ink, char *why, size_t nwhy) {
    size_t len;
    unsigned char *f = (unsigned char *)mq_read_file(path, &len);
    if (!f || len < 33 || memcmp(f, "\x89PNG\r\n\x1a\n", 8)) { snprintf(why, nwhy, "not a PNG"); free(f); return -1; }
    uint32_t w = be32(f + 16), h = be32(f + 20);
    int depth = f[24], ctype = f[25], inter = f[28], bpp = ctype == 6 ? 4 : ctype == 2 ? 3 : 0;
    if (depth != 8 || !bpp || inter || !w || !h) { snprintf(why, nwhy, "PNG depth %d type %d interlace %d", depth, ctype, inter); free(f); return -1; }
    unsigned char *z = malloc(len);
    size_t nz = 0;
    for (size_t o = 8; o + 12 <= len;) {
        uint32_t n = be32(f + o);
        if (o + 12 + n > len) break;
        if (!memcmp(f + o + 4, "IDAT", 4)) memcpy(z + nz, f + o + 8, n), nz += n;
        o += 12 + n;
    }
    size_t stride = (size_t)w * bpp, raw_n = (stride + 1) * h;
    uLongf got = raw_n;
    unsigned char *raw = malloc(raw_n), *img = malloc(stride * h);
    int zrc = uncompress(raw, &got, z, nz);
    double share = -1;
    if (zrc != Z_OK || got != raw_n) snprintf(why, nwhy, "zlib: %d, %lu of %zu bytes", zrc, (unsigned long)got, raw_n);
    else {
        for (uint32_t y = 0; y < h; y++) {   /* undo the per-row filters */
            const unsigned char *in = raw + y * (stride + 1) + 1;
            unsigned char *out = img + y * stride, *up = y ? out - stride : NULL;
            int ft = in[-1];
            for (size_t i = 0; i < stride; i++) {
                int a = i >= (size_t)bpp ? out[i - bpp] : 0, b = up ? up[i] : 0, c = up && i >= (size_t)bpp ? up[i - bpp] : 0, pr;
                switch (ft) {
                case 0: pr = 0; break;
                case 1: pr = a; break;
                case 2: pr = b; break;
                case 3: pr = (a + b) / 2; break;
                default: {
                    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
                    pr = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
                }
                }
                out[i] = (unsigned char)(in[i] + pr);
            }
        }
        size_t ink = 0;
        *rows_with_ink = 0;
        for (uint32_t y = 0; y < h; y++) {
            int row = 0;
            for (uint32_t i = 0; i < w; i++) {
                int d = memcmp(img + y * stride + (size_t)i * bpp, img, 3) != 0;
                ink += d, row |= d;
            }
            *rows_with_ink += row;
        }
        share = (double)ink / ((double)w * h);
    }
    free(f), free(z), free(raw), free(img);
    return share;
}

static int have_chromium(void) { return system("command -v chromium > /dev/null 2>&1") == 0; }

static void browser_check(const char *html, const char *png) {
    char cmd[8000], log[600], abs[4096];
    if (!realpath(html, abs)) { T_CHECK(0, "realpath %s", html); return; }
    snprintf(log, sizeof log, "%s.chromium.log", png);
    snprintf(cmd, sizeof cmd,
             "timeout 180 chromium --headless --disable-gpu --no-sandbox --user-data-dir='%s/chromium-profile' --enable-logging=stderr "
             "--v=0 --screenshot='%s' --window-size=1280,4000 'file://%s'", t_tmpdir(), png, abs);
    int rc = sh(cmd, log);
    char *out = slurp(log);
    T_CHECK(rc == 0, "chromium exit %d: %.2000s", rc, out);
    const char *bad[] = {"CONSOLE", "Uncaught", "Refused to", "Failed to load"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *hit = strstr(out, bad[i]);
        T_CHECK(!hit, "console message from the page: %.300s", hit);
    }
    free(out);
    int rows = 0;
    char why[128] = "";
    double ink = png_ink(png, &rows, why, sizeof why);
    T_CHECK(ink >= 0, "%s: %s", png, why);
    T_CHECK(ink > 0.01 && rows > 1000, "%s looks blank: %.3g%% of the pixels differ from the background, %d rows", png, 100 * ink, rows);
    printf("    %s: %.1f%% ink, %d rows with ink\n", png, 100 * ink, rows);
}

/* ---- the cases ---- */

static const char *tmp_path(const char *name) {
    static char buf[8][600];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", t_tmpdir(), name);
    return buf[k];
}

static void test_mamba1(void) {
    struct stat st;
    if (stat("bin/mambaq", &st) != 0) T_SKIP("bin/mambaq not built");
    if (!t_shared("models/mamba1-proxy") || !t_shared("datasets/calib.txt")) T_SKIP("../shared not found");
    const char *sd = shared_dir(), *stats = tmp_path("m1.safetensors"), *art = tmp_path("art_m1"), *log = tmp_path("m1.log");
    const char *ver = tmp_path("m1_verify.json"), *page = tmp_path("m1.html");
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "bin/mambaq calib --model '%s/models/mamba1-proxy' --data '%s/datasets/calib.txt' --samples 4 --seqlen 64 "
             "--device cpu --out '%s' --quiet", sd, sd, stats);
    T_CHECK(sh(cmd, log) == 0, "calib failed: %s", slurp(log));
    snprintf(cmd, sizeof cmd, "bin/mambaq quantize --model '%s/models/mamba1-proxy' --stats '%s' --out '%s' --percentile 99.999 --quiet --force --record-paths",
             sd, stats, art);
    T_CHECK(sh(cmd, log) == 0, "quantize failed: %s", slurp(log));
    /* verify without a GPU: the CPU simulation, exit 3, JSON on stdout */
    snprintf(cmd, sizeof cmd, "bin/mambaq verify --artifact '%s' --data '%s/datasets/valid.txt' --window 64 --windows 1 --json", art, sd);
    int vrc = sh_stdout(cmd, ver);
    T_CHECK(vrc == 0 || vrc == 3, "verify failed (%d): %s", vrc, slurp(ver));
    snprintf(cmd, sizeof cmd, "bin/mambaq report --stats '%s' --artifact '%s' --verify '%s' --out '%s'", stats, art, ver, page);
    T_CHECK(sh(cmd, log) == 0, "report failed: %s", slurp(log));
    char *html = check_page(page, 24);
    if (!html) return;
    T_CHECK(strstr(html, "Per-layer block cosine") && count(html, "class=\"pt\"") == 24, "no cosine chart with 24 points");
    T_CHECK(strstr(html, "all equal to the clips the recipe takes from this stats file"), "artifact scales not checked against the stats");
    T_CHECK(count(html, "Scales of the artifact") == 24, "artifact scale tables");
    T_CHECK(count(html, "<h4>y before and after the Hadamard") == 24 && strstr(html, "absmax H y"), "Hadamard comparison");
    T_CHECK(strstr(html, "ppl float") && strstr(html, "top-1 agreement"), "verify summary");
    free(html);

    /* no artifact: the recipe's clips from the stats; a verify file with the GPU check's keys and others missing */
    const char *ver2 = tmp_path("m1_verify2.json"), *page2 = tmp_path("m1_noart.html");
    const char *j = "{\"arch\":\"mamba1\",\"layer_cosine\":[0.9991,0.9987],\"simulation_check\":{\"ok\":true,\"roles\":{"
                    "\"ssm_x\":{\"values\":1000,\"codes_differing\":3,\"max_steps\":1,\"worst_layer\":1},"
                    "\"dt\":{\"values\":500,\"max_rel_diff\":0.0012,\"worst_layer\":7}}}}";
    mq_write_file_atomic(ver2, j, strlen(j));
    snprintf(cmd, sizeof cmd, "bin/mambaq report --stats '%s' --verify '%s' --out '%s' --method quamba --percentile 99.999", stats, ver2, page2);
    T_CHECK(sh(cmd, log) == 0, "report without an artifact failed: %s", slurp(log));
    char *o = slurp(log);
    T_CHECK(strstr(o, "layer_cosine has 2 values, the model has 24 layers"), "no warning on the short layer_cosine: %s", o);
    free(o);
    html = check_page(page2, 24);
    if (!html) return;
    T_CHECK(strstr(html, "Per-role int8 error") && strstr(html, "check passed") && strstr(html, "0.3%"), "role table");
    T_CHECK(strstr(html, "none given (clips computed from the stats"), "no-artifact summary");
    free(html);
    if (have_chromium()) browser_check(page, tmp_path("m1.png"));
}

/* mamba2-proxy calibrated as `mambaq run` does for quamba (x / rms(x) and H y observed). */
static void test_mamba2_rotated(void) {
    struct stat st;
    if (stat("bin/mambaq", &st) != 0) T_SKIP("bin/mambaq not built");
    char model[4200], tok[4200], data[4200], cmd[16384];
    snprintf(model, sizeof model, "%s/models/mamba2-proxy", shared_dir());
    snprintf(tok, sizeof tok, "%s/models/tokenizer.json", shared_dir());
    snprintf(data, sizeof data, "%s/datasets/calib.txt", shared_dir());
    if (stat(model, &st) || stat(data, &st)) T_SKIP("../shared not found");
    const char *stats = tmp_path("m2_rot.safetensors"), *page = tmp_path("m2.html"), *log = tmp_path("m2.log");
    mq_model m;
    T_CHECK(ssm_load(model, &m) == 0, "%s", mq_errmsg());
    calib_options o;
    calib_defaults(&o);
    o.model_dir = model, o.data_path = data, o.tokenizer_path = tok, o.out_path = stats;
    o.samples = 4, o.seqlen = 64, o.device = "cpu", o.quiet = 1, o.tool = "test_report";
    q_options qo;
    q_options_default(&qo);
    o.ntransforms = q_cstats_transforms(&m, &qo, o.transforms);
    calib_result res;
    T_CHECK(calib_run(&o, &res) == 0, "%s", mq_errmsg());
    ssm_free(&m);
    snprintf(cmd, sizeof cmd, "bin/mambaq report --stats '%s' --out '%s'", stats, page);
    T_CHECK(sh(cmd, log) == 0, "report failed: %s", slurp(log));
    char *html = check_page(page, 20);
    if (!html) return;
    T_CHECK(count(html, "H y (out_proj:input)") >= 20, "H y histogram not shown next to y in every layer");
    T_CHECK(count(html, "absmax per head") >= 20 * 2, "per-head maxima of x and the state");
    T_CHECK(strstr(html, "largest heads:"), "largest heads listed");
    T_CHECK(!strstr(html, "(transformed first)"), "the file holds every variant quamba needs, yet a role is marked transformed");
    free(html);
}

/* A stats file of 128 Mamba1 layers written directly (synthetic log-normal-ish histograms; per-channel
 * maxima of x_proj:input, which calib does not record today, to show the page reads them). */
static int write_synthetic(const char *path, int L) {
    static const char *ops[] = {"in_proj:input", "in_proj:output", "x_proj:input", "x_proj:output", "dt_proj:input",
                                "dt_proj:output", "ssm_state_act:input", "had:input", "out_proj:input"};
    st_writer *w = st_writer_new();
    int64_t one = 1, np = 7, nb = OBS_HIST_BINS;
    static const double q[7] = {0.90, 0.95, 0.96, 0.975, 0.98, 0.99, 1.0};   /* of absmax, per percentile */
    int64_t *hist = malloc(OBS_HIST_BINS * sizeof *hist);
    int rc = 0;
    for (int l = 0; l <= L && !rc; l++)
        for (int k = 0; k < 9 && !rc; k++) {
            if (l == L && k) break;
            char name[200], t[240];
            if (l == L) snprintf(name, sizeof name, "lm_head:input");
            else snprintf(name, sizeof name, "backbone.layers.%d.mixer.%s", l, ops[k]);
            int centre = 900 + 8 * k + (l * 37 % 50), top = centre + 180 + (l % 7) * 10;
            for (int i = 0; i < OBS_HIST_BINS; i++) {
                double z = (i - centre) / 90.0;
                hist[i] = i <= top ? (int64_t)(2e4 * exp(-z * z)) + (i > top - 40) : 0;
            }
            float amax = obs_hist_edge(top + 1) * 0.999f, p[7];
            for (int j = 0; j < 7; j++) p[j] = (float)(amax * q[j]);
            snprintf(t, sizeof t, "%s.absmax", name);
            rc |= st_writer_add(w, t, MQ_F32, 1, &one, &amax);
            snprintf(t, sizeof t, "%s.percentiles", name);
            rc |= st_writer_add(w, t, MQ_F32, 1, &np, p);
            snprintf(t, sizeof t, "%s.ema_percentiles", name);
            rc |= st_writer_add(w, t, MQ_F32, 1, &np, p);
            snprintf(t, sizeof t, "%s.hist", name);
            rc |= st_writer_add(w, t, MQ_I64, 1, &nb, hist);
            if (k == 2) {   /* per-channel maxima as calib could record them: a few outlier channels */
                float ch[128];
                int64_t nc = 128;
                for (int c = 0; c < 128; c++) ch[c] = amax * (c % 41 == 7 ? 1.0f : 0.2f + 0.002f * c);
                snprintf(t, sizeof t, "%s.absmax_per_channel", name);
                rc |= st_writer_add(w, t, MQ_F32, 1, &nc, ch);
            }
        }
    char cfg[200];
    snprintf(cfg, sizeof cfg, "mamba1 d_model=64 n_layer=%d d_inner=128 d_state=16 d_conv=4 dt_rank=4 vocab=1000", L);
    const char *kv[] = {"format", CALIB_FORMAT, "format_version", CALIB_FORMAT_VERSION, "model.arch", "mamba1", "model.config", cfg,
                        "model.path", "synthetic <128 layers> & co \xff\x01", "model.weights_sha256", "0000", "calib.percentiles",
                        "99,99.9,99.95,99.99,99.995,99.999,100", "calib.transforms", "none"};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0] && !rc; i += 2) rc = st_writer_add_metadata(w, kv[i], kv[i + 1]);
    if (!rc) rc = st_writer_write(w, path);
    st_writer_free(w);
    free(hist);
    return rc;
}

static void test_many_layers(void) {
    struct stat st;
    if (stat("bin/mambaq", &st) != 0) T_SKIP("bin/mambaq not built");
    const char *stats = tmp_path("synth128.safetensors"), *page = tmp_path("synth128.html"), *log = tmp_path("synth.log");
    T_CHECK(write_synthetic(stats, 128) == 0, "%s", mq_errmsg());
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "bin/mambaq report --stats '%s' --out '%s'", stats, page);
    T_CHECK(sh(cmd, log) == 0, "report failed: %s", slurp(log));
    char *html = check_page(page, 128);
    if (!html) return;
    T_CHECK(strstr(html, "synthetic &lt;128 layers&gt; &amp; co ??"), "the model path from the file is not escaped");
    T_CHECK(strlen(html) < 12000000, "page of %zu bytes for 128 layers", strlen(html));
    T_CHECK(count(html, "x_proj:input: absmax per channel") == 128 && strstr(html, "largest channels: 7: "),
            "per-channel maxima, when a stats file has them, not shown with the outlier channels");
    free(html);
    if (have_chromium()) browser_check(page, tmp_path("synth128.png"));
}

/* No file under --out (nor a temporary one beside it) after a failed run. */
static int leftovers(const char *page) {
    char cmd[1300];
    snprintf(cmd, sizeof cmd, "ls '%s'* > /dev/null 2>&1", page);
    return system(cmd) == 0;
}

static void test_errors(void) {
    struct stat st;
    if (stat("bin/mambaq", &st) != 0) T_SKIP("bin/mambaq not built");
    const char *m1 = tmp_path("m1.safetensors"), *art1 = tmp_path("art_m1"), *log = tmp_path("err.log");
    const char *page = tmp_path("never.html");
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "bin/mambaq report --stats '%s' --out '%s'", tmp_path("missing.safetensors"), page);
    T_CHECK(sh(cmd, log) != 0, "a missing stats file accepted");
    char *o = slurp(log);
    T_CHECK(strstr(o, "missing.safetensors"), "message does not name the file: %s", o);
    free(o);
    T_CHECK(!leftovers(page), "output left after a failed run");
    snprintf(cmd, sizeof cmd, "bin/mambaq report --out '%s'", page);
    T_CHECK(sh(cmd, log) == 2, "no --stats: usage error expected");

    if (stat(m1, &st) || stat(art1, &st)) T_SKIP("needs the mamba1 stats and artifact of test_mamba1");
    /* another model's artifact: quantize mamba2-proxy from its own quick stats */
    const char *sd = shared_dir(), *s2 = tmp_path("m2.safetensors"), *art2 = tmp_path("art_m2");
    snprintf(cmd, sizeof cmd, "(bin/mambaq calib --model '%s/models/mamba2-proxy' --data '%s/datasets/calib.txt' --samples 2 --seqlen 64 "
             "--device cpu --out '%s' --quiet && bin/mambaq quantize --model '%s/models/mamba2-proxy' --stats '%s' --out '%s' --quiet --force)",
             sd, sd, s2, sd, s2, art2);
    T_CHECK(sh(cmd, log) == 0, "mamba2 calib/quantize failed: %s", slurp(log));
    snprintf(cmd, sizeof cmd, "bin/mambaq report --stats '%s' --artifact '%s' --out '%s'", m1, art2, page);
    T_CHECK(sh(cmd, log) == 1, "another model's artifact accepted");
    o = slurp(log);
    T_CHECK(strstr(o, "art_m2") && strstr(o, "m1.safetensors") && strstr(o, "other weights"), "message: %s", o);
    free(o);
    T_CHECK(!leftovers(page), "output left after a failed run");
    /* a broken verify file, and one that is not an object */
    const char *bad = tmp_path("bad_verify.json");
    mq_write_file_atomic(bad, "{\"layer_cosine\": [0.9,", 22);
    snprintf(cmd, sizeof cmd, "bin/mambaq report --stats '%s' --artifact '%s' --verify '%s' --out '%s'", m1, art1, bad, page);
    T_CHECK(sh(cmd, log) == 1, "broken verify JSON accepted");
    o = slurp(log);
    T_CHECK(strstr(o, "bad_verify.json") && strstr(o, "not valid JSON"), "message: %s", o);
    free(o);
    mq_write_file_atomic(bad, "[1,2]", 5);
    T_CHECK(sh(cmd, log) == 1, "a JSON array accepted as verify output");
    mq_write_file_atomic(bad, "{\"arch\":\"mamba2\"}", 17);
    T_CHECK(sh(cmd, log) == 1, "the verify output of a mamba2 model accepted with mamba1 statistics");
    o = slurp(log);
    T_CHECK(strstr(o, "bad_verify.json is the verify output of a mamba2 model"), "message: %s", o);
    free(o);
    /* a percentile the file lacks */
    snprintf(cmd, sizeof cmd, "bin/mambaq report --stats '%s' --percentile 97 --out '%s'", m1, page);
    T_CHECK(sh(cmd, log) == 1, "a percentile that was not calibrated accepted");
    o = slurp(log);
    T_CHECK(strstr(o, "percentile 97 was not calibrated"), "message: %s", o);
    free(o);
    T_CHECK(!leftovers(page), "output left after a failed run");
}

static void test_browser(void) {
    if (!have_chromium()) T_SKIP("chromium is not installed (apt-get install chromium): the pages were checked for well-formedness only");
    /* the renders happen in test_mamba1 and test_many_layers; here: the PNG check itself on a blank page */
    const char *blank = tmp_path("blank.html"), *png = tmp_path("blank.png");
    const char *doc = "<!DOCTYPE html><html><body></body></html>";
    mq_write_file_atomic(blank, doc, strlen(doc));
    char cmd[12000], abs[4096];
    if (!realpath(blank, abs)) T_SKIP("realpath");
    snprintf(cmd, sizeof cmd, "timeout 120 chromium --headless --disable-gpu --no-sandbox --user-data-dir='%s/chromium-profile' "
             "--screenshot='%s' --window-size=400,300 'file://%s'", t_tmpdir(), png, abs);
    T_CHECK(sh(cmd, tmp_path("blank.log")) == 0, "chromium failed on a blank page");
    int rows = -1;
    char why[128] = "";
    double ink = png_ink(png, &rows, why, sizeof why);
    T_CHECK(ink == 0 && rows == 0, "a blank page has %.3g ink, %d rows (%s): the blank check would not catch one", ink, rows, why);
}

int main(void) {
    T_RUN(test_checker);
    T_RUN(test_mamba1);
    T_RUN(test_mamba2_rotated);
    T_RUN(test_many_layers);
    T_RUN(test_errors);
    T_RUN(test_browser);
    return t_summary();
}
