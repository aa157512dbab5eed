/*
 * A test stand-in for ESXi's mboot.efi (vmware/esx-boot mboot/config.c, uefi/efiutils/tftpfile.c,
 * httpfile.c, gpxefile.c), for the route tests (test/e2e/routes.test.ts). It gets its files the way the
 * loader does on each route:
 *   - loaded by PXE: TFTP through the firmware's PXE Base Code (size query, then read; blksize 1468 or
 *     boot.cfg's tftpblksize=), server and boot file from the DHCP packet the firmware kept;
 *   - loaded by UEFI HTTP boot: the firmware's EFI_HTTP_PROTOCOL on the boot NIC, local address from the
 *     boot device path, HEAD for sizes and GET for loads, refusing an answer without Content-Length;
 *   - started by iPXE with "-c URL": iPXE's download protocol (the gPXE one, which esx-boot uses);
 *   - started from a CD (BMC virtual media) or from a RAM disk (UEFI HTTP boot of an ISO URL): the disc's
 *     ISO 9660 tree read through its block device, as esx-boot's isobounce and ISO9660 driver give mboot
 *     its own directory (uefi/isobounce, uefi/efiutils/volume.c get_boot_device()); boot.cfg from that
 *     directory only, no per-MAC lookup (a disc is not a network boot: uefi/efiutils/net.c).
 * Without -c it looks for <its dir>/01-<mac>/boot.cfg (read twice), then <its dir>/boot.cfg; it takes
 * prefix= (default: the config's directory), kernel= and modules=, asks every file's size first, then loads
 * each, and prints each file's size and FNV-1a checksum on the console, then ends QEMU (isa-debug-exit).
 */
#include <efi.h>
#include <efilib.h>

static EFI_PXE_BASE_CODE *pxe;
static EFI_IP_ADDRESS server;
static UINTN blksize = 1468;

static UINTN slen(const CHAR8 *s) { UINTN n = 0; while (s[n]) n++; return n; }
static void scpy(CHAR8 *d, const CHAR8 *s) { while ((*d++ = *s++)) {} }
static void scat(CHAR8 *d, const CHAR8 *s) { scpy(d + slen(d), s); }
static int sncmp(const CHAR8 *a, const CHAR8 *b, UINTN n) { for (UINTN i = 0; i < n; i++) { CHAR8 x = a[i], y = b[i]; if (x >= 'A' && x <= 'Z') x += 32; if (y >= 'A' && y <= 'Z') y += 32; if (x != y) return 1; if (!x) return 0; } return 0; }
static int contains(const CHAR8 *s, const CHAR8 *needle) { UINTN n = slen(needle); for (; *s; s++) if (!sncmp(s, needle, n)) return 1; return 0; }


static EFI_STATUS tftp_size(const CHAR8 *path, UINT64 *size) {
  UINT8 dummy;
  *size = 0;
  EFI_STATUS st = uefi_call_wrapper(pxe->Mtftp, 10, pxe, EFI_PXE_BASE_CODE_TFTP_GET_FILE_SIZE, &dummy, FALSE, size, &blksize, &server, (UINT8 *)path, NULL, TRUE);
  return st == EFI_BUFFER_TOO_SMALL ? EFI_SUCCESS : st;
}

static EFI_STATUS tftp_load(const CHAR8 *path, UINT8 **buf, UINT64 *len) {
  UINT64 size;
  EFI_STATUS st = tftp_size(path, &size);
  if (EFI_ERROR(st)) return st;
  *buf = AllocatePool(size + 1);
  if (!*buf) return EFI_OUT_OF_RESOURCES;
  *len = size;
  st = uefi_call_wrapper(pxe->Mtftp, 10, pxe, EFI_PXE_BASE_CODE_TFTP_READ_FILE, *buf, FALSE, len, &blksize, &server, (UINT8 *)path, NULL, FALSE);
  if (EFI_ERROR(st)) { FreePool(*buf); return st; }
  (*buf)[*len] = 0;
  return EFI_SUCCESS;
}

/* --- UEFI HTTP (UEFI 2.5 §28.7), as httpfile.c uses it --- */
typedef enum { HttpVersion10, HttpVersion11 } HTTP_VERSION;
typedef enum { HttpMethodGet, HttpMethodPost, HttpMethodPatch, HttpMethodOptions, HttpMethodConnect, HttpMethodHead } HTTP_METHOD;
typedef struct { BOOLEAN UseDefaultAddress; EFI_IPv4_ADDRESS LocalAddress; EFI_IPv4_ADDRESS LocalSubnet; UINT16 LocalPort; } HTTPv4_ACCESS_POINT;
typedef struct { HTTP_VERSION HttpVersion; UINT32 TimeOutMillisec; BOOLEAN LocalAddressIsIPv6; HTTPv4_ACCESS_POINT *IPv4Node; } HTTP_CONFIG_DATA;
typedef struct { HTTP_METHOD Method; CHAR16 *Url; } HTTP_REQUEST_DATA;
typedef struct { UINT32 StatusCode; } HTTP_RESPONSE_DATA;
typedef struct { CHAR8 *FieldName; CHAR8 *FieldValue; } HTTP_HEADER;
typedef struct { void *Data; UINTN HeaderCount; HTTP_HEADER *Headers; UINTN BodyLength; VOID *Body; } HTTP_MESSAGE;
typedef struct { EFI_EVENT Event; EFI_STATUS Status; HTTP_MESSAGE *Message; } HTTP_TOKEN;
typedef struct _HTTP_PROTOCOL {
  EFI_STATUS (EFIAPI *GetModeData)(struct _HTTP_PROTOCOL *, HTTP_CONFIG_DATA *);
  EFI_STATUS (EFIAPI *Configure)(struct _HTTP_PROTOCOL *, HTTP_CONFIG_DATA *);
  EFI_STATUS (EFIAPI *Request)(struct _HTTP_PROTOCOL *, HTTP_TOKEN *);
  EFI_STATUS (EFIAPI *Cancel)(struct _HTTP_PROTOCOL *, HTTP_TOKEN *);
  EFI_STATUS (EFIAPI *Response)(struct _HTTP_PROTOCOL *, HTTP_TOKEN *);
  EFI_STATUS (EFIAPI *Poll)(struct _HTTP_PROTOCOL *);
} HTTP_PROTOCOL;
typedef struct _SERVICE_BINDING {
  EFI_STATUS (EFIAPI *CreateChild)(struct _SERVICE_BINDING *, EFI_HANDLE *);
  EFI_STATUS (EFIAPI *DestroyChild)(struct _SERVICE_BINDING *, EFI_HANDLE);
} SERVICE_BINDING;
static EFI_GUID HttpSbGuid = { 0xbdc8e6af, 0xd9bc, 0x4379, { 0xa7, 0x2a, 0xe0, 0xc4, 0xe7, 0x5d, 0xae, 0x1c } };
static EFI_GUID HttpGuid = { 0x7a59b29b, 0x910b, 0x4171, { 0x82, 0x42, 0xa8, 0x5a, 0x0d, 0xf2, 0x5b, 0x5b } };
#define HTTP_STATUS_200_OK 3

static HTTP_PROTOCOL *http;
static volatile BOOLEAN http_done;
static EFI_EVENT http_event;
static VOID __attribute__((ms_abi)) http_notify(EFI_EVENT e, VOID *ctx) { (void)e; (void)ctx; http_done = TRUE; }

static void wait_http(void) { while (!http_done) uefi_call_wrapper(http->Poll, 1, http); }

/* One HEAD (buf == NULL) or GET, as http_file_load_try: the length comes from Content-Length, or it fails. */
static EFI_STATUS http_get(const CHAR8 *url, UINT8 **buf, UINT64 *len) {
  CHAR16 wurl[512];
  UINTN n = 0;
  for (; url[n] && n < 511; n++) wurl[n] = url[n];
  wurl[n] = 0;
  CHAR8 host[128];
  const CHAR8 *h = url; while (*h && !(h[0] == '/' && h[1] == '/')) h++; h += 2;
  n = 0; while (h[n] && h[n] != '/' && n < 127) { host[n] = h[n]; n++; } host[n] = 0;
  HTTP_REQUEST_DATA rd = { buf ? HttpMethodGet : HttpMethodHead, wurl };
  HTTP_HEADER hdr[2] = { { (CHAR8 *)"User-Agent", (CHAR8 *)"esx-boot/2.0 (netboot test loader)" }, { (CHAR8 *)"Host", host } };
  HTTP_MESSAGE req = { &rd, 2, hdr, 0, NULL };
  HTTP_TOKEN tok = { http_event, EFI_NOT_READY, &req };
  http_done = FALSE;
  EFI_STATUS st = uefi_call_wrapper(http->Request, 2, http, &tok);
  if (EFI_ERROR(st)) return st;
  wait_http();
  if (EFI_ERROR(tok.Status)) return tok.Status;
  HTTP_RESPONSE_DATA resp = { 0 };
  HTTP_MESSAGE rm = { &resp, 0, NULL, 0, NULL };
  HTTP_TOKEN rt = { http_event, EFI_SUCCESS, &rm };
  http_done = FALSE;
  st = uefi_call_wrapper(http->Response, 2, http, &rt);
  if (EFI_ERROR(st)) return st;
  wait_http();
  INT64 size = -1;
  for (UINTN i = 0; i < rm.HeaderCount; i++) {
    if (!sncmp(rm.Headers[i].FieldName, (CHAR8 *)"content-length", 15)) { size = 0; for (CHAR8 *c = rm.Headers[i].FieldValue; *c >= '0' && *c <= '9'; c++) size = size * 10 + (*c - '0'); }
    if (!sncmp(rm.Headers[i].FieldName, (CHAR8 *)"transfer-encoding", 18)) Print(L"answer framed with Transfer-Encoding: %a\n", rm.Headers[i].FieldValue);
  }
  if (size < 0) { Print(L"No http Content-Length header (%a)\n", url); return EFI_PROTOCOL_ERROR; }
  if (resp.StatusCode != HTTP_STATUS_200_OK) { Print(L"HTTP status %d for %a\n", resp.StatusCode, url); return EFI_NOT_FOUND; }
  *len = (UINT64)size;
  if (!buf) return EFI_SUCCESS;
  *buf = AllocatePool(size + 1);
  UINT64 got = 0;
  while (got < (UINT64)size) {
    HTTP_MESSAGE bm = { NULL, 0, NULL, (UINTN)(size - got), *buf + got };
    HTTP_TOKEN bt = { http_event, EFI_SUCCESS, &bm };
    http_done = FALSE;
    st = uefi_call_wrapper(http->Response, 2, http, &bt);
    if (EFI_ERROR(st)) return st;
    wait_http();
    if (EFI_ERROR(bt.Status)) return bt.Status;
    got += bm.BodyLength;
  }
  (*buf)[size] = 0;
  return EFI_SUCCESS;
}

/* HTTP-booted: the NIC and local address from the boot device path (as get_http_nic_info does). */
static EFI_STATUS http_init(EFI_HANDLE device, CHAR8 *bootUri) {
  EFI_DEVICE_PATH *dp = DevicePathFromHandle(device);
  if (!dp) return EFI_NOT_FOUND;
  EFI_IPv4_ADDRESS local = { { 0 } }, mask = { { 0 } };
  BOOLEAN haveIp = FALSE;
  for (EFI_DEVICE_PATH *node = dp; !IsDevicePathEnd(node); node = NextDevicePathNode(node)) {
    UINT8 *raw = (UINT8 *)node;
    if (DevicePathType(node) == MESSAGING_DEVICE_PATH && DevicePathSubType(node) == MSG_IPv4_DP && DevicePathNodeLength(node) >= 27) {
      CopyMem(&local, raw + 4, 4); CopyMem(&mask, raw + 23, 4); haveIp = TRUE;
    }
    if (DevicePathType(node) == MESSAGING_DEVICE_PATH && DevicePathSubType(node) == MSG_URI_DP) {
      UINTN n = DevicePathNodeLength(node) - 4; if (n > 255) n = 255;
      CopyMem(bootUri, raw + 4, n); bootUri[n] = 0;
    }
  }
  if (!haveIp || !bootUri[0]) return EFI_NOT_FOUND;
  EFI_HANDLE nic;
  EFI_DEVICE_PATH *walk = dp;
  EFI_STATUS st = uefi_call_wrapper(BS->LocateDevicePath, 3, &HttpSbGuid, &walk, &nic);
  if (EFI_ERROR(st)) return st;
  SERVICE_BINDING *sb;
  st = uefi_call_wrapper(BS->HandleProtocol, 3, nic, &HttpSbGuid, (void **)&sb);
  if (EFI_ERROR(st)) return st;
  EFI_HANDLE child = NULL;
  st = uefi_call_wrapper(sb->CreateChild, 2, sb, &child);
  if (EFI_ERROR(st)) return st;
  st = uefi_call_wrapper(BS->HandleProtocol, 3, child, &HttpGuid, (void **)&http);
  if (EFI_ERROR(st)) return st;
  HTTPv4_ACCESS_POINT ap = { FALSE, local, mask, 49160 };
  HTTP_CONFIG_DATA cfg = { HttpVersion11, 30000, FALSE, &ap };
  st = uefi_call_wrapper(http->Configure, 2, http, &cfg);
  if (EFI_ERROR(st)) return st;
  return uefi_call_wrapper(BS->CreateEvent, 5, EVT_NOTIFY_SIGNAL, TPL_CALLBACK, http_notify, NULL, &http_event);
}

/* --- iPXE's download protocol (gPXE's, esx-boot gpxe_download.h) --- */
typedef struct _DOWNLOAD_PROTOCOL {
  EFI_STATUS (EFIAPI *Start)(struct _DOWNLOAD_PROTOCOL *, CHAR8 *, EFI_STATUS (__attribute__((ms_abi)) *)(VOID *, VOID *, UINTN, UINTN), void (__attribute__((ms_abi)) *)(VOID *, EFI_STATUS), VOID *, VOID **);
  EFI_STATUS (EFIAPI *Abort)(struct _DOWNLOAD_PROTOCOL *, VOID *, EFI_STATUS);
  EFI_STATUS (EFIAPI *Poll)(struct _DOWNLOAD_PROTOCOL *);
} DOWNLOAD_PROTOCOL;
static EFI_GUID DownloadGuid = { 0x3eaeaebd, 0xdecf, 0x493b, { 0x9b, 0xd1, 0xcd, 0xb2, 0xde, 0xca, 0xe7, 0x19 } };
static DOWNLOAD_PROTOCOL *dl;
struct dl_ctx { UINT8 *buf; UINTN cap, len; BOOLEAN done; EFI_STATUS status; };
static EFI_STATUS __attribute__((ms_abi)) dl_data(VOID *c, VOID *data, UINTN n, UINTN off) {
  struct dl_ctx *x = c;
  UINTN need = n ? off + n : off; /* n == 0: a size hint in off */
  if (need + 1 > x->cap) { UINTN cap = need * 2 + 4096; UINT8 *b = AllocatePool(cap); if (x->buf) { CopyMem(b, x->buf, x->len); FreePool(x->buf); } x->buf = b; x->cap = cap; }
  if (n) { CopyMem(x->buf + off, data, n); if (off + n > x->len) x->len = off + n; }
  return EFI_SUCCESS;
}
static void __attribute__((ms_abi)) dl_finish(VOID *c, EFI_STATUS st) { struct dl_ctx *x = c; x->done = TRUE; x->status = st; }
static EFI_STATUS dl_load(const CHAR8 *url, UINT8 **buf, UINT64 *len) {
  struct dl_ctx x = { NULL, 0, 0, FALSE, EFI_SUCCESS };
  VOID *file;
  EFI_STATUS st = uefi_call_wrapper(dl->Start, 6, dl, (CHAR8 *)url, dl_data, dl_finish, &x, &file);
  if (EFI_ERROR(st)) return st;
  while (!x.done) uefi_call_wrapper(dl->Poll, 1, dl);
  if (EFI_ERROR(x.status)) return x.status;
  if (!x.buf) { x.buf = AllocatePool(1); }
  x.buf[x.len] = 0;
  *buf = x.buf;
  *len = x.len;
  return EFI_SUCCESS;
}

/* The disc: the whole CD's block device (the El Torito partition's parent), its ISO 9660 primary tree. */
static EFI_BLOCK_IO *cdio;
static EFI_STATUS cd_read(UINT64 off, UINTN len, UINT8 *out) {
  UINT32 bs = cdio->Media->BlockSize;
  UINT64 lba = off / bs;
  UINTN skip = (UINTN)(off % bs), total = ((skip + len + bs - 1) / bs) * bs;
  UINT8 *tmp = AllocatePool(total);
  if (!tmp) return EFI_OUT_OF_RESOURCES;
  EFI_STATUS st = uefi_call_wrapper(cdio->ReadBlocks, 5, cdio, cdio->Media->MediaId, lba, total, tmp);
  if (!EFI_ERROR(st)) CopyMem(out, tmp + skip, len);
  FreePool(tmp);
  return st;
}
static UINT32 le32(const UINT8 *p) { return (UINT32)p[0] | (UINT32)p[1] << 8 | (UINT32)p[2] << 16 | (UINT32)p[3] << 24; }
/* A path's extent (byte offset) and size in the primary tree: names compared in any case, ";1" and a trailing "." ignored. */
static EFI_STATUS iso_find(const CHAR8 *path, UINT64 *at, UINT64 *size) {
  UINT8 pvd[2048];
  EFI_STATUS st = cd_read(16 * 2048, 2048, pvd);
  if (EFI_ERROR(st)) return st;
  if (pvd[0] != 1 || pvd[1] != 'C' || pvd[2] != 'D' || pvd[3] != '0' || pvd[4] != '0' || pvd[5] != '1') return EFI_VOLUME_CORRUPTED;
  UINT64 ext = (UINT64)le32(pvd + 156 + 2) * 2048, len = le32(pvd + 156 + 10);
  const CHAR8 *p = path;
  while (*p == '/') p++;
  while (*p) {
    CHAR8 want[128]; UINTN w = 0;
    while (*p && *p != '/' && w < 127) want[w++] = *p++;
    want[w] = 0;
    while (*p == '/') p++;
    UINT8 *dir = AllocatePool(len);
    if (!dir) return EFI_OUT_OF_RESOURCES;
    st = cd_read(ext, len, dir);
    if (EFI_ERROR(st)) { FreePool(dir); return st; }
    BOOLEAN found = FALSE;
    for (UINT64 i = 0; i < len; ) {
      UINT8 rl = dir[i];
      if (rl == 0) { i = (i / 2048 + 1) * 2048; continue; }
      UINT8 nl = dir[i + 32];
      CHAR8 name[128]; UINTN n = 0;
      for (UINTN k = 0; k < nl && k < 127 && dir[i + 33 + k] != ';'; k++) name[n++] = dir[i + 33 + k];
      while (n > 0 && name[n - 1] == '.') n--;
      name[n] = 0;
      if (n == w && !sncmp(name, want, w)) { ext = (UINT64)le32(dir + i + 2) * 2048; len = le32(dir + i + 10); found = TRUE; break; }
      i += rl;
    }
    FreePool(dir);
    if (!found) return EFI_NOT_FOUND;
  }
  *at = ext;
  *size = len;
  return EFI_SUCCESS;
}
static EFI_STATUS disc_load(const CHAR8 *path, UINT8 **buf, UINT64 *len) {
  UINT64 at, size;
  EFI_STATUS st = iso_find(path, &at, &size);
  if (EFI_ERROR(st)) return st;
  *len = size;
  if (!buf) return EFI_SUCCESS;
  *buf = AllocatePool(size + 1);
  if (!*buf) return EFI_OUT_OF_RESOURCES;
  st = cd_read(at, (UINTN)size, *buf);
  if (!EFI_ERROR(st)) (*buf)[size] = 0;
  return st;
}
/* The El Torito partition the firmware booted (a CDROM media node) → the whole disc's block device. */
static EFI_STATUS disc_init(EFI_HANDLE device) {
  EFI_DEVICE_PATH *dp = DuplicateDevicePath(DevicePathFromHandle(device));
  BOOLEAN cd = FALSE;
  for (EFI_DEVICE_PATH *node = dp; dp && !IsDevicePathEnd(node); node = NextDevicePathNode(node)) {
    if (DevicePathType(node) == MEDIA_DEVICE_PATH && DevicePathSubType(node) == MEDIA_CDROM_DP) { SetDevicePathEndNode(node); cd = TRUE; break; }
  }
  if (!cd) return EFI_NOT_FOUND;
  EFI_DEVICE_PATH *walk = dp;
  EFI_HANDLE disc;
  EFI_STATUS st = uefi_call_wrapper(BS->LocateDevicePath, 3, &BlockIoProtocol, &walk, &disc);
  if (EFI_ERROR(st)) return st;
  st = uefi_call_wrapper(BS->HandleProtocol, 3, disc, &BlockIoProtocol, (void **)&cdio);
  if (EFI_ERROR(st)) return st;
  return cdio->Media->LogicalPartition ? EFI_UNSUPPORTED : EFI_SUCCESS;
}

/* firmware_file_read / get_size: a URL by iPXE's download protocol or UEFI HTTP, anything else by TFTP. */
static EFI_STATUS file_size(const CHAR8 *path, UINT64 *size) {
  if (cdio) return disc_load(path, NULL, size);
  if (contains(path, (CHAR8 *)"://")) {
    if (dl) { UINT8 *b; EFI_STATUS st = dl_load(path, &b, size); if (!EFI_ERROR(st)) FreePool(b); return st; }
    return http ? http_get(path, NULL, size) : EFI_UNSUPPORTED;
  }
  return pxe ? tftp_size(path, size) : EFI_UNSUPPORTED;
}
static EFI_STATUS file_load(const CHAR8 *path, UINT8 **buf, UINT64 *len) {
  if (cdio) return disc_load(path, buf, len);
  if (contains(path, (CHAR8 *)"://")) {
    if (dl) return dl_load(path, buf, len);
    return http ? http_get(path, buf, len) : EFI_UNSUPPORTED;
  }
  return pxe ? tftp_load(path, buf, len) : EFI_UNSUPPORTED;
}

static UINT32 fnv(const UINT8 *p, UINT64 n) { UINT32 h = 0x811c9dc5u; for (UINT64 i = 0; i < n; i++) { h ^= p[i]; h *= 0x01000193u; } return h; }

/* make_path: absolute ("/x" or a URL) as given, else prefix + "/" + name. */
static void make_path(CHAR8 *out, const CHAR8 *prefix, const CHAR8 *name) {
  if (name[0] == '/' || name[0] == '\\' || contains(name, (CHAR8 *)"://") || !prefix[0]) { scpy(out, name); return; }
  scpy(out, prefix);
  if (out[slen(out) - 1] != '/') scat(out, (CHAR8 *)"/");
  scat(out, name);
}

static void dirname(CHAR8 *p) { UINTN n = slen(p); while (n > 0 && p[n - 1] != '/') n--; while (n > 0 && p[n - 1] == '/') n--; p[n] = 0; }

static const UINT8 *dhcp_option(EFI_PXE_BASE_CODE_PACKET *pk, UINT8 code, UINT8 *len) {
  const UINT8 *p = pk->Dhcpv4.DhcpOptions, *end = (const UINT8 *)pk + sizeof(*pk);
  while (p < end) {
    UINT8 c = *p++;
    if (c == 0) continue;
    if (c == 255) break;
    UINT8 l = *p++;
    if (c == code) { *len = l; return p; }
    p += l;
  }
  return NULL;
}

static CHAR8 *value(CHAR8 *cfg, const CHAR8 *key) {
  UINTN k = slen(key);
  for (CHAR8 *line = cfg; *line; ) {
    CHAR8 *s = line;
    while (*s == ' ' || *s == '\t') s++;
    if (!sncmp(s, key, k) && (s[k] == '=' || s[k] == ' ')) {
      s += k; while (*s == ' ') s++;
      if (*s == '=') { s++; while (*s == ' ') s++; return s; }
    }
    while (*line && *line != '\n') line++;
    if (*line) line++;
  }
  return NULL;
}

static void copy_value(CHAR8 *out, UINTN max, const CHAR8 *v) {
  UINTN n = 0;
  if (v) while (v[n] && v[n] != '\n' && v[n] != '\r' && n < max - 1) { out[n] = v[n]; n++; }
  while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '\t')) n--;
  out[n] = 0;
}

static void exit_qemu(void) { __asm__ volatile("outb %0, %1" : : "a"((UINT8)0x10), "Nd"((UINT16)0xf4)); }

#define MAXF 64
static CHAR8 files[MAXF][256];

EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *systab) {
  InitializeLib(image, systab);
  EFI_LOADED_IMAGE *li;
  EFI_STATUS st = uefi_call_wrapper(BS->HandleProtocol, 3, image, &LoadedImageProtocol, (void **)&li);
  if (EFI_ERROR(st)) { Print(L"NETBOOT-TEST-LOADER no loaded image: %r\n", st); return st; }
  /* -c <config> on the command line (iPXE's chain passes it), as mboot's options. */
  CHAR8 config[512] = { 0 };
  if (li->LoadOptions && li->LoadOptionsSize) {
    CHAR16 *o = li->LoadOptions;
    UINTN n = li->LoadOptionsSize / 2, i = 0;
    for (; i + 1 < n && o[i]; i++) if (o[i] == '-' && o[i + 1] == 'c' && (i == 0 || o[i - 1] == ' ')) break;
    if (i + 1 < n && o[i]) { i += 2; while (i < n && o[i] == ' ') i++; UINTN k = 0; while (i < n && o[i] && o[i] != ' ' && k < 511) config[k++] = (CHAR8)o[i++]; config[k] = 0; }
  }
  CHAR8 bootfile[256] = { 0 };
  const UINT8 *mac = NULL;
  UINT8 macbuf[6] = { 0 };
  const CHAR8 *route;
  if (!EFI_ERROR(disc_init(li->DeviceHandle))) {
    /* The loader's own directory on the disc: \EFI\BOOT (isobounce starts mboot from there). */
    route = (CHAR8 *)"disc";
    scpy(bootfile, (CHAR8 *)"/EFI/BOOT/BOOTX64.EFI");
  } else if (!EFI_ERROR(uefi_call_wrapper(BS->HandleProtocol, 3, li->DeviceHandle, &DownloadGuid, (void **)&dl))) {
    route = (CHAR8 *)"ipxe-download";
  } else if (!EFI_ERROR(uefi_call_wrapper(BS->HandleProtocol, 3, li->DeviceHandle, &PxeBaseCodeProtocol, (void **)&pxe)) && pxe->Mode->Started) {
    route = (CHAR8 *)"pxe-tftp";
    EFI_PXE_BASE_CODE_MODE *mode = pxe->Mode;
    EFI_PXE_BASE_CODE_PACKET *pk = mode->PxeReplyReceived ? &mode->PxeReply : mode->ProxyOfferReceived ? &mode->ProxyOffer : &mode->DhcpAck;
    CopyMem(&server, pk->Dhcpv4.BootpSiAddr, 4);
    UINT8 olen;
    const UINT8 *o;
    if (!server.v4.Addr[0] && (o = dhcp_option(pk, 54, &olen)) && olen == 4) CopyMem(&server, o, 4);
    if ((o = dhcp_option(pk, 67, &olen))) { CopyMem(bootfile, o, olen); bootfile[olen] = 0; }
    else { CopyMem(bootfile, pk->Dhcpv4.BootpBootFile, 128); bootfile[127] = 0; }
    mac = mode->DhcpAck.Dhcpv4.BootpHwAddr;
  } else {
    pxe = NULL;
    st = http_init(li->DeviceHandle, bootfile);
    if (EFI_ERROR(st)) { Print(L"NETBOOT-TEST-LOADER-FAIL neither PXE, UEFI HTTP nor iPXE: %r\n", st); exit_qemu(); return st; }
    route = (CHAR8 *)"uefi-http";
  }
  if (!mac) {
    /* The NIC's own address, from the device path's MAC node. */
    for (EFI_DEVICE_PATH *node = DevicePathFromHandle(li->DeviceHandle); node && !IsDevicePathEnd(node); node = NextDevicePathNode(node))
      if (DevicePathType(node) == MESSAGING_DEVICE_PATH && DevicePathSubType(node) == MSG_MAC_ADDR_DP) CopyMem(macbuf, (UINT8 *)node + 4, 6);
    mac = macbuf;
  }
  Print(L"\nNETBOOT-TEST-LOADER route=%a bootfile=%a config=%a mac=%02x:%02x:%02x:%02x:%02x:%02x\n", route, bootfile, config, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);

  CHAR8 bootdir[256], cfgpath[512], rel[64];
  scpy(bootdir, bootfile);
  dirname(bootdir);
  UINT8 *cfg = NULL;
  UINT64 cfglen = 0;
  if (config[0]) {
    make_path(cfgpath, bootdir, config);
  } else if (cdio) {
    make_path(cfgpath, bootdir, (CHAR8 *)"BOOT.CFG");
  } else {
    /* locate_config_file: <bootdir>/01-<mac>/boot.cfg first (a probe read), then <bootdir>/boot.cfg. */
    static const CHAR8 hex[] = "0123456789abcdef";
    scpy(rel, (CHAR8 *)"01-");
    for (int i = 0; i < 6; i++) { UINTN n = slen(rel); rel[n] = hex[mac[i] >> 4]; rel[n + 1] = hex[mac[i] & 15]; rel[n + 2] = i < 5 ? '-' : 0; rel[n + 3] = 0; }
    scat(rel, (CHAR8 *)"/boot.cfg");
    make_path(cfgpath, bootdir, rel);
    st = file_load(cfgpath, &cfg, &cfglen);
    if (EFI_ERROR(st)) {
      Print(L"config %a: %r\n", cfgpath, st);
      make_path(cfgpath, bootdir, (CHAR8 *)"boot.cfg");
    } else FreePool(cfg);
  }
  /* parse_config_file reads it again. */
  st = file_load(cfgpath, &cfg, &cfglen);
  if (EFI_ERROR(st)) { Print(L"NETBOOT-TEST-LOADER-FAIL config %a: %r\n", cfgpath, st); exit_qemu(); return st; }
  Print(L"config %a size=%ld\n", cfgpath, cfglen);

  CHAR8 prefix[256], kernel[256], kopts[1024], bs[16];
  CHAR8 *mods = AllocatePool(8192);
  copy_value(prefix, sizeof prefix, value((CHAR8 *)cfg, (CHAR8 *)"prefix"));
  if (!value((CHAR8 *)cfg, (CHAR8 *)"prefix")) { scpy(prefix, cfgpath); dirname(prefix); }
  copy_value(kernel, sizeof kernel, value((CHAR8 *)cfg, (CHAR8 *)"kernel"));
  copy_value(kopts, sizeof kopts, value((CHAR8 *)cfg, (CHAR8 *)"kernelopt"));
  copy_value(mods, 8192, value((CHAR8 *)cfg, (CHAR8 *)"modules"));
  copy_value(bs, sizeof bs, value((CHAR8 *)cfg, (CHAR8 *)"tftpblksize"));
  if (bs[0]) { UINTN n = 0; for (CHAR8 *c = bs; *c >= '0' && *c <= '9'; c++) n = n * 10 + (UINTN)(*c - '0'); if (n >= 512 && n <= 65464) blksize = n; }
  Print(L"prefix=%a blksize=%d kernelopt=%a\n", prefix, blksize, kopts);

  int nf = 0;
  make_path(files[nf++], prefix, kernel);
  for (CHAR8 *m = mods; *m && nf < MAXF; ) {
    while (*m == ' ' || *m == '-') { if (m[0] == '-' && !(m[1] == '-' && m[2] == '-')) break; m += (*m == '-') ? 3 : 1; }
    if (!*m) break;
    CHAR8 name[256]; UINTN n = 0;
    while (m[n] && m[n] != ' ' && n < 255) { name[n] = m[n]; n++; }
    name[n] = 0;
    m += n;
    while (*m == ' ') m++;
    if (m[0] == '-' && m[1] == '-' && m[2] == '-') m += 3;
    make_path(files[nf++], prefix, name);
  }
  /* get_load_size_hint: every file's size first. */
  for (int i = 0; i < nf; i++) {
    UINT64 size;
    st = file_size(files[i], &size);
    if (EFI_ERROR(st)) { Print(L"NETBOOT-TEST-LOADER-FAIL size %a: %r\n", files[i], st); exit_qemu(); return st; }
  }
  for (int i = 0; i < nf; i++) {
    UINT8 *b; UINT64 n;
    st = file_load(files[i], &b, &n);
    if (EFI_ERROR(st)) { Print(L"NETBOOT-TEST-LOADER-FAIL load %a: %r\n", files[i], st); exit_qemu(); return st; }
    Print(L"module %d size=%ld fnv=%08x name=%a\n", i, n, fnv(b, n), files[i]);
    FreePool(b);
  }
  Print(L"NETBOOT-TEST-LOADER-DONE\n");
  exit_qemu();
  return EFI_SUCCESS;
}
