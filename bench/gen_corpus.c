/* gen_corpus.c — synthetic knowledge-base articles and questions for the benchmarks.
 * Articles are built from word lists and sentence frames of our own (a shop's
 * help centre: products, problems, policies), deterministic for a seed.
 *   gen_corpus articles LOCALE N OUT_DIR [SEED]   writes OUT_DIR/LOCALE/bNNNNNN.md
 *   gen_corpus queries LOCALE N COUNT [SEED]      prints COUNT questions, one a line:
 *       about 80% paraphrase one of the N articles, the rest ask about nothing in them
 * LOCALE is en or zh. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define COUNT(a) (sizeof(a) / sizeof(a)[0])

static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)((rng_state >> 11) % n);
}

#define PICK(a) (a)[rnd(COUNT(a))]

/* English word lists */
static const char *en_adj[] = {"wireless", "compact",  "foldable",  "cordless",   "smart",
                               "portable", "electric", "quiet",     "heavy-duty", "kids",
                               "outdoor",  "travel",   "stainless", "solar",      "ceramic",
                               "bamboo",   "magnetic", "heated",    "waterproof", "rechargeable"};
static const char *en_noun[] = {"kettle",         "blender",    "vacuum",  "air fryer", "rice cooker",
                                "desk lamp",      "backpack",   "tent",    "stroller",  "router",
                                "earbuds",        "camera",     "scooter", "monitor",   "keyboard",
                                "coffee grinder", "humidifier", "toaster", "mattress",  "office chair",
                                "smartwatch",     "speaker",    "drill",   "projector", "sewing machine"};
static const char *en_topic[] = {"return",      "exchange",     "refund",      "warranty claim",
                                 "repair",      "installation", "delivery",    "invoice",
                                 "price match", "recycling",    "spare parts", "firmware update"};
static const char *en_issue[] = {"does not turn on", "arrived damaged",      "makes a loud noise",
                                 "will not charge",  "smells of plastic",    "leaks water",
                                 "lost its pairing", "shows an error light", "is missing a part",
                                 "overheats",        "stopped working",      "has a cracked lid"};
static const char *en_step[] = {
    "unplug it for a minute",      "check the fuse in the plug", "hold the reset button",
    "photograph the serial label", "keep the original box",      "update the app",
    "charge it for two hours",     "clean the filter",           "tighten the base screws",
    "try another socket",          "remove the battery",         "pair it again from settings"};
static const char *en_when[] = {"within 30 days",
                                "within 14 days of delivery",
                                "during the two-year warranty",
                                "before the parcel is collected",
                                "after the courier scans it",
                                "once the inspection is done",
                                "on working days",
                                "within 48 hours"};
static const char *en_ask[] = {"how do I",          "can I",      "what is the way to",
                               "is it possible to", "where do I", "when can I"};
static const char *en_verb[] = {"arrange a", "start a", "request a", "get a", "book a", "ask for a"};
static const char *en_miss[] = {"weather", "football",  "recipe",   "holiday", "lottery",
                                "poem",    "election",  "dinosaur", "volcano", "chess",
                                "guitar",  "telescope", "marathon", "opera"};

/* Chinese word lists */
static const char *zh_adj[] = {"无线", "迷你",   "折叠",   "智能", "便携", "电动", "静音", "儿童", "户外",
                               "旅行", "不锈钢", "太阳能", "陶瓷", "竹制", "磁吸", "加热", "防水", "充电式"};
static const char *zh_noun[] = {"电水壶", "破壁机", "吸尘器",   "空气炸锅", "电饭煲",   "台灯",
                                "双肩包", "帐篷",   "婴儿车",   "路由器",   "蓝牙耳机", "相机",
                                "滑板车", "显示器", "键盘",     "磨豆机",   "加湿器",   "面包机",
                                "床垫",   "办公椅", "智能手表", "音箱",     "电钻",     "投影仪"};
static const char *zh_topic[] = {"退货", "换货", "退款",     "保修",     "维修", "安装",
                                 "配送", "发票", "价格保护", "以旧换新", "配件", "固件升级"};
static const char *zh_issue[] = {"无法开机", "收到时已损坏", "噪音很大",   "充不进电",
                                 "有塑料味", "漏水",         "蓝牙连不上", "指示灯报错",
                                 "缺少零件", "发热严重",     "突然不工作", "盖子裂了"};
static const char *zh_step[] = {"拔掉电源等一分钟", "检查插头保险丝", "长按复位键",   "拍下机身序列号",
                                "保留原包装",       "更新手机应用",   "先充电两小时", "清洗滤网",
                                "拧紧底座螺丝",     "换一个插座试试", "取出电池",     "在设置里重新配对"};
static const char *zh_when[] = {"签收后三十天内", "签收后十四天内", "两年保修期内", "快递取件前",
                                "快递揽收后",     "检测完成后",     "工作日",       "四十八小时内"};
static const char *zh_ask[] = {"怎么", "如何", "可以", "在哪里", "什么时候能", "能不能"};
static const char *zh_verb[] = {"申请", "办理", "预约", "提交", "发起"};
static const char *zh_miss[] = {"天气", "足球", "菜谱", "假期", "彩票",   "诗歌",   "选举",
                                "恐龙", "火山", "象棋", "吉他", "望远镜", "马拉松", "歌剧"};

/* A brand name made of syllables, one of NBRANDS, fixed by b: the rare words
 * real help centres have (product and model names) and customers type. */
#define NBRANDS 4096
static const char *brand(unsigned b, char *buf)
{
    static const char *const on[] = {"b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z"};
    static const char *const nu[] = {"a", "e", "i", "o", "u", "ai", "ou", "ei"};
    static const char *const co[] = {"n", "r", "x", "", "l", "s"};
    unsigned h = b * 2654435761u;
    snprintf(buf, 32, "%s%s%s%s%s", on[h % 14], nu[h / 14 % 8], on[h / 112 % 14], nu[h / 1568 % 8],
             co[b % 6]);
    return buf;
}

/* The subject of article k: fixed by k, so queries can aim at it. */
struct subject {
    unsigned adj, noun, topic, issue, brand;
};

static struct subject subject_of(unsigned k, int zh)
{
    unsigned na = zh ? COUNT(zh_adj) : COUNT(en_adj), nn = zh ? COUNT(zh_noun) : COUNT(en_noun);
    unsigned nt = zh ? COUNT(zh_topic) : COUNT(en_topic), ni = zh ? COUNT(zh_issue) : COUNT(en_issue);
    uint64_t h = (uint64_t)k * 0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
    return (struct subject){(unsigned)(k % na), (unsigned)(k / na % nn), (unsigned)(h % nt),
                            (unsigned)(h / nt % ni), (unsigned)(h / nt / ni % NBRANDS)};
}

static void en_article(FILE *f, unsigned k)
{
    struct subject s = subject_of(k, 0);
    const char *a = en_adj[s.adj], *n = en_noun[s.noun], *t = en_topic[s.topic], *i = en_issue[s.issue];
    char b[32];
    brand(s.brand, b);
    fprintf(f, "id: b%06u\nlocale: en\ntitle: %c%s for a %s %s %s that %s (case %u)\n", k, t[0] - 32, t + 1,
            b, a, n, i, k);
    fprintf(f, "tags: %s, %s, %s, %s, case %u\n", t, n, a, b, k);
    fprintf(f, "question: %s %s %s for my %s %s?\n", PICK(en_ask), PICK(en_verb), t, b, n);
    fprintf(f, "question: my %s %s %s, what now?\n\n", a, n, i);
    fprintf(f, "The %s %s series is covered here. ", b, n);
    fprintf(f, "## %c%s\n\n", t[0] - 32, t + 1);
    for (int p = 0; p < 3; p++) {
        int sentences = 3 + (int)rnd(3);
        for (int q = 0; q < sentences; q++) {
            switch (rnd(5)) {
            case 0: fprintf(f, "If your %s %s, %s first. ", n, PICK(en_issue), PICK(en_step)); break;
            case 1: fprintf(f, "A %s is accepted %s for every %s %s. ", t, PICK(en_when), a, n); break;
            case 2: fprintf(f, "Our team will %s and reply %s. ", PICK(en_step), PICK(en_when)); break;
            case 3: fprintf(f, "Please **%s** before you send the %s back. ", PICK(en_step), n); break;
            default: fprintf(f, "See case %u for the %s of other %s models. ", k, t, PICK(en_noun));
            }
        }
        fputs("\n\n", f);
    }
    const char *st = PICK(en_step), *wh = PICK(en_when);
    fprintf(f, "- %c%s\n- %c%s\n", st[0] - 32, st + 1, wh[0] - 32, wh + 1);
}

static void zh_article(FILE *f, unsigned k)
{
    struct subject s = subject_of(k, 1);
    const char *a = zh_adj[s.adj], *n = zh_noun[s.noun], *t = zh_topic[s.topic], *i = zh_issue[s.issue];
    char b[32];
    brand(s.brand, b);
    fprintf(f, "id: b%06u\nlocale: zh\ntitle: %s %s%s%s怎么%s（编号 %u）\n", k, b, a, n, i, t, k);
    fprintf(f, "tags: %s, %s, %s, %s, 编号 %u\n", t, n, a, b, k);
    fprintf(f, "question: %s %s%s%s？\n", b, n, PICK(zh_ask), t);
    fprintf(f, "question: 我的%s%s%s，怎么办？\n\n", a, n, i);
    fprintf(f, "## %s说明\n\n本文适用于 %s 品牌的%s。", t, b, n);
    for (int p = 0; p < 3; p++) {
        int sentences = 3 + (int)rnd(3);
        for (int q = 0; q < sentences; q++) {
            switch (rnd(5)) {
            case 0: fprintf(f, "如果您的%s%s，请先%s。", n, PICK(zh_issue), PICK(zh_step)); break;
            case 1: fprintf(f, "%s%s可在%s%s。", a, n, PICK(zh_when), t); break;
            case 2: fprintf(f, "客服会在%s回复，请%s。", PICK(zh_when), PICK(zh_step)); break;
            case 3: fprintf(f, "寄回%s前请**%s**。", n, PICK(zh_step)); break;
            default: fprintf(f, "其他%s的%s规则见编号 %u。", PICK(zh_noun), t, k);
            }
        }
        fputs("\n\n", f);
    }
    fprintf(f, "- %s\n- %s\n", PICK(zh_step), PICK(zh_when));
}

static void query(unsigned n, int zh)
{
    if (rnd(10) < 2) { /* about nothing the corpus holds */
        if (zh)
            printf("%s%s和%s有什么关系\n", PICK(zh_ask), PICK(zh_miss), PICK(zh_miss));
        else
            printf("%s learn about %s and %s\n", PICK(en_ask), PICK(en_miss), PICK(en_miss));
        return;
    }
    struct subject s = subject_of(rnd(n), zh);
    char b[32];
    brand(s.brand, b);
    if (rnd(10) < 6) { /* customers often name the product */
        if (zh)
            printf("%s %s%s%s\n", b, zh_noun[s.noun], zh_issue[s.issue],
                   rnd(2) ? "怎么办" : zh_topic[s.topic]);
        else
            printf("%s %s %s, %s %s %s?\n", b, en_noun[s.noun], en_issue[s.issue], PICK(en_ask),
                   PICK(en_verb), en_topic[s.topic]);
        return;
    }
    if (zh) {
        switch (rnd(3)) {
        case 0:
            printf("%s%s%s%s%s\n", zh_adj[s.adj], zh_noun[s.noun], PICK(zh_ask), PICK(zh_verb),
                   zh_topic[s.topic]);
            break;
        case 1: printf("我买的%s%s了，%s\n", zh_noun[s.noun], zh_issue[s.issue], zh_topic[s.topic]); break;
        default: printf("%s%s%s\n", zh_noun[s.noun], zh_topic[s.topic], PICK(zh_when));
        }
    } else {
        switch (rnd(3)) {
        case 0:
            printf("%s %s %s for a %s %s\n", PICK(en_ask), PICK(en_verb), en_topic[s.topic], en_adj[s.adj],
                   en_noun[s.noun]);
            break;
        case 1:
            printf("my %s %s, I want a %s\n", en_noun[s.noun], en_issue[s.issue], en_topic[s.topic]);
            break;
        default: printf("%s %s %s\n", en_noun[s.noun], en_topic[s.topic], PICK(en_when));
        }
    }
}

int main(int argc, char **argv)
{
    if (argc < 5 || (strcmp(argv[2], "en") != 0 && strcmp(argv[2], "zh") != 0)) {
        fprintf(stderr, "usage: gen_corpus articles en|zh N OUT_DIR [SEED]\n"
                        "       gen_corpus queries en|zh N COUNT [SEED]\n");
        return 2;
    }
    int zh = argv[2][0] == 'z';
    unsigned n = (unsigned)strtoul(argv[3], NULL, 10);
    rng_state = argc > 5 ? strtoull(argv[5], NULL, 10) : 20261202;
    rng_state = rng_state * 2654435761u + 1;
    if (n == 0 || n > 1000000) {
        fprintf(stderr, "gen_corpus: N must be 1..1000000\n");
        return 2;
    }
    if (strcmp(argv[1], "queries") == 0) {
        unsigned count = (unsigned)strtoul(argv[4], NULL, 10);
        for (unsigned q = 0; q < count; q++)
            query(n, zh);
        return 0;
    }
    if (strcmp(argv[1], "articles") != 0) {
        fprintf(stderr, "gen_corpus: unknown mode '%s'\n", argv[1]);
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", argv[4], argv[2]);
    if ((mkdir(argv[4], 0755) != 0 && errno != EEXIST) || (mkdir(path, 0755) != 0 && errno != EEXIST)) {
        fprintf(stderr, "gen_corpus: cannot create '%s'\n", path);
        return 1;
    }
    for (unsigned k = 0; k < n; k++) {
        snprintf(path, sizeof path, "%s/%s/b%06u.md", argv[4], argv[2], k);
        FILE *f = fopen(path, "w");
        if (!f) {
            fprintf(stderr, "gen_corpus: cannot write '%s'\n", path);
            return 1;
        }
        (zh ? zh_article : en_article)(f, k);
        if (fclose(f) != 0) {
            fprintf(stderr, "gen_corpus: cannot write '%s'\n", path);
            return 1;
        }
    }
    return 0;
}
