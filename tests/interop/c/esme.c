/*
 * A libsmpp34 (Debian libsmpp34-dev) ESME for tests/interop/test_libsmpp34.py.
 *
 * libsmpp34 is a codec only: smpp34_pack() turns a struct into PDU octets and
 * smpp34_unpack() checks and decodes octets into a struct (it refuses a PDU that
 * lacks a mandatory field, which makes it a strict reader of what the bridge sends).
 * This driver adds what an application adds around it: a TCP socket, a read loop
 * with a deadline, answers to deliver_sm and enquire_link.
 *
 * Usage: esme PORT SYSTEM_ID PASSWORD tx|rx|trx SOURCE_ADDR RECEIPTS TIMEOUT_S [STEP...]
 *   STEP  submit:DEST:DATA_CODING:REGISTERED_DELIVERY:TEXT   one submit_sm
 *         long:DEST:REGISTERED_DELIVERY:TEXT   153-character parts behind UDH 05 00 03 ref n i
 *         query:MESSAGE_ID                     one query_sm
 * Flow: bind; every step at once; read until every answer and RECEIPTS receipts
 * arrived (answering deliver_sm and enquire_link); unbind. Prints one JSON object
 * per line for each PDU it read, with what libsmpp34 decoded from it, and an
 * "unpack_error" line (the library's own message and the PDU in hex) for a PDU it
 * could not decode.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <smpp34.h>
#include <smpp34_structs.h>
#include <smpp34_params.h>

#define MAX_PENDING 64

static int sock = -1;
static uint32_t next_sequence = 1;
static time_t deadline;
static uint32_t pending[MAX_PENDING];
static int pending_count = 0;

static void json_string(const char *key, const uint8_t *value, size_t length) {
    printf(",\"%s\":\"", key);
    for (size_t i = 0; i < length; i++) {
        uint8_t c = value[i];
        if (c == '"' || c == '\\') {
            printf("\\%c", c);
        } else if (c < 0x20 || c >= 0x7f) {
            printf("\\u%04x", c);
        } else {
            putchar(c);
        }
    }
    putchar('"');
}

static void json_hex(const char *key, const uint8_t *value, size_t length) {
    printf(",\"%s\":\"", key);
    for (size_t i = 0; i < length; i++) {
        printf("%02x", value[i]);
    }
    putchar('"');
}

static void fail(const char *what) {
    printf("{\"event\":\"error\"");
    json_string("error", (const uint8_t *)what, strlen(what));
    printf("}\n");
    exit(0);
}

static void send_pdu(uint32_t type, void *pdu) {
    uint8_t buffer[2048];
    int length = 0;
    if (smpp34_pack(type, buffer, sizeof buffer, &length, pdu) != 0) {
        fail(smpp34_strerror);
    }
    if (write(sock, buffer, (size_t)length) != length) {
        fail("write failed");
    }
}

static int read_exactly(uint8_t *buffer, size_t length) {
    size_t done = 0;
    while (done < length) {
        int left_ms = (int)(deadline - time(NULL)) * 1000;
        if (left_ms <= 0) {
            fail("timeout");
        }
        struct pollfd fd = {sock, POLLIN, 0};
        if (poll(&fd, 1, left_ms) <= 0) {
            continue;
        }
        ssize_t n = read(sock, buffer + done, length - done);
        if (n <= 0) {
            return -1;
        }
        done += (size_t)n;
    }
    return 0;
}

/* One whole PDU into buffer; its length, or -1 when the bridge closed the connection. */
static int read_pdu(uint8_t *buffer, size_t size) {
    if (read_exactly(buffer, 4) != 0) {
        return -1;
    }
    uint32_t length = ntohl(*(uint32_t *)buffer);
    if (length < 16 || length > size) {
        fail("bad command_length");
    }
    if (read_exactly(buffer + 4, length - 4) != 0) {
        return -1;
    }
    return (int)length;
}

static int unpack(uint32_t type, void *pdu, uint8_t *buffer, int length) {
    if (smpp34_unpack(type, pdu, buffer, length) == 0) {
        return 0;
    }
    char name[64] = "";
    str_command_id(type, name);
    printf("{\"event\":\"unpack_error\"");
    json_string("command", (const uint8_t *)name, strlen(name));
    printf(",\"command_status\":%u", ntohl(*(uint32_t *)(buffer + 8)));
    json_string("error", (const uint8_t *)smpp34_strerror, strlen(smpp34_strerror));
    json_hex("hex", buffer, (size_t)length);
    printf("}\n");
    return -1;
}

static void forget(uint32_t sequence) {
    for (int i = 0; i < pending_count; i++) {
        if (pending[i] == sequence) {
            pending[i] = pending[--pending_count];
            return;
        }
    }
}

static void submit(const char *destination, uint8_t data_coding, uint8_t registered_delivery, uint8_t esm_class,
                   const uint8_t *message, size_t length, const char *source) {
    submit_sm_t pdu;
    memset(&pdu, 0, sizeof pdu);
    pdu.command_id = SUBMIT_SM;
    pdu.sequence_number = next_sequence++;
    pdu.source_addr_ton = TON_International;
    pdu.source_addr_npi = NPI_ISDN_E163_E164;
    snprintf((char *)pdu.source_addr, sizeof pdu.source_addr, "%s", source);
    pdu.dest_addr_ton = TON_International;
    pdu.dest_addr_npi = NPI_ISDN_E163_E164;
    snprintf((char *)pdu.destination_addr, sizeof pdu.destination_addr, "%s", destination);
    pdu.esm_class = esm_class;
    pdu.registered_delivery = registered_delivery;
    pdu.data_coding = data_coding;
    pdu.sm_length = (uint8_t)length;
    memcpy(pdu.short_message, message, length);
    send_pdu(SUBMIT_SM, &pdu);
    pending[pending_count++] = pdu.sequence_number;
    printf("{\"event\":\"submit_sm\",\"sequence_number\":%u", pdu.sequence_number);
    json_string("destination_addr", pdu.destination_addr, strlen((char *)pdu.destination_addr));
    printf(",\"data_coding\":%u,\"esm_class\":%u}\n", data_coding, esm_class);
}

static void submit_long(const char *destination, uint8_t registered_delivery, const char *text, const char *source) {
    static uint8_t reference = 0x42;
    size_t length = strlen(text);
    size_t parts = (length + 152) / 153;
    for (size_t i = 0; i < parts; i++) {
        uint8_t message[160] = {0x05, 0x00, 0x03, reference, (uint8_t)parts, (uint8_t)(i + 1)};
        size_t chunk = length - i * 153 < 153 ? length - i * 153 : 153;
        memcpy(message + 6, text + i * 153, chunk);
        submit(destination, 0x00, registered_delivery, SMPP34_UDHI_IND, message, chunk + 6, source);
    }
    reference++;
}

static void query(const char *message_id, const char *source) {
    query_sm_t pdu;
    memset(&pdu, 0, sizeof pdu);
    pdu.command_id = QUERY_SM;
    pdu.sequence_number = next_sequence++;
    snprintf((char *)pdu.message_id, sizeof pdu.message_id, "%s", message_id);
    pdu.source_addr_ton = TON_International;
    pdu.source_addr_npi = NPI_ISDN_E163_E164;
    snprintf((char *)pdu.source_addr, sizeof pdu.source_addr, "%s", source);
    send_pdu(QUERY_SM, &pdu);
    pending[pending_count++] = pdu.sequence_number;
}

static void report_tlvs(tlv_t *tlv) {
    tlv_t *item;
    smpp34_tlv_for_each(item, tlv) {
        if (item->tag == TLVID_receipted_message_id) {
            json_string("receipted_message_id", item->value.octet, strnlen((char *)item->value.octet, item->length));
        } else if (item->tag == TLVID_message_state) {
            printf(",\"message_state\":%u", item->value.val08);
        } else if (item->tag == TLVID_sc_interface_version) {
            printf(",\"sc_interface_version\":%u", item->value.val08);
        }
    }
}

/* Decode one PDU the bridge sent, print it, answer it if it is a request. */
static void handle(uint8_t *buffer, int length) {
    uint32_t command = ntohl(*(uint32_t *)(buffer + 4));
    uint32_t status = ntohl(*(uint32_t *)(buffer + 8));
    uint32_t sequence = ntohl(*(uint32_t *)(buffer + 12));
    char name[64] = "";
    str_command_id(command, name);
    forget(sequence);
    if (command == DELIVER_SM) {
        deliver_sm_t pdu;
        memset(&pdu, 0, sizeof pdu);
        if (unpack(command, &pdu, buffer, length) == 0) {
            printf("{\"event\":\"deliver_sm\",\"sequence_number\":%u,\"esm_class\":%u,\"data_coding\":%u", sequence,
                   pdu.esm_class, pdu.data_coding);
            json_string("source_addr", pdu.source_addr, strlen((char *)pdu.source_addr));
            json_string("destination_addr", pdu.destination_addr, strlen((char *)pdu.destination_addr));
            json_string("short_message", pdu.short_message, pdu.sm_length);
            report_tlvs(pdu.tlv);
            printf("}\n");
            destroy_tlv(pdu.tlv);
            deliver_sm_resp_t resp;
            memset(&resp, 0, sizeof resp);
            resp.command_id = DELIVER_SM_RESP;
            resp.sequence_number = sequence;
            send_pdu(DELIVER_SM_RESP, &resp);
        }
        return;
    }
    if (command == ENQUIRE_LINK) {
        printf("{\"event\":\"enquire_link\",\"sequence_number\":%u}\n", sequence);
        enquire_link_resp_t resp;
        memset(&resp, 0, sizeof resp);
        resp.command_id = ENQUIRE_LINK_RESP;
        resp.sequence_number = sequence;
        send_pdu(ENQUIRE_LINK_RESP, &resp);
        return;
    }
    submit_sm_resp_t submit_resp;
    query_sm_resp_t query_resp;
    unbind_resp_t empty; /* unbind_resp and generic_nack are a header only */
    void *decoded = command == SUBMIT_SM_RESP ? (void *)&submit_resp
                    : command == QUERY_SM_RESP ? (void *)&query_resp
                                               : (void *)&empty;
    memset(&submit_resp, 0, sizeof submit_resp);
    memset(&query_resp, 0, sizeof query_resp);
    if (unpack(command, decoded, buffer, length) != 0) {
        return;
    }
    printf("{\"event\":\"response\"");
    json_string("command", (const uint8_t *)name, strlen(name));
    printf(",\"command_status\":%u,\"sequence_number\":%u", status, sequence);
    if (command == SUBMIT_SM_RESP) {
        json_string("message_id", submit_resp.message_id, strlen((char *)submit_resp.message_id));
    } else if (command == QUERY_SM_RESP) {
        json_string("message_id", query_resp.message_id, strlen((char *)query_resp.message_id));
        json_string("final_date", query_resp.final_date, strlen((char *)query_resp.final_date));
        printf(",\"message_state\":%u,\"error_code\":%u", query_resp.message_state, query_resp.error_code);
    }
    printf("}\n");
}

static void bind_as(const char *kind, const char *system_id, const char *password) {
    bind_transceiver_t pdu; /* the three bind requests share one layout */
    memset(&pdu, 0, sizeof pdu);
    uint32_t type = strcmp(kind, "tx") == 0 ? BIND_TRANSMITTER : strcmp(kind, "rx") == 0 ? BIND_RECEIVER : BIND_TRANSCEIVER;
    pdu.command_id = type;
    pdu.sequence_number = next_sequence++;
    snprintf((char *)pdu.system_id, sizeof pdu.system_id, "%s", system_id);
    snprintf((char *)pdu.password, sizeof pdu.password, "%s", password);
    pdu.interface_version = SMPP_VERSION;
    send_pdu(type, &pdu);

    uint8_t buffer[4096];
    int length = read_pdu(buffer, sizeof buffer);
    if (length < 0) {
        fail("connection closed before bind response");
    }
    bind_transceiver_resp_t resp; /* the three bind responses share one layout */
    memset(&resp, 0, sizeof resp);
    if (unpack(type | 0x80000000, &resp, buffer, length) != 0) {
        exit(0);
    }
    char name[64] = "";
    str_command_id(resp.command_id, name);
    printf("{\"event\":\"bind_resp\"");
    json_string("command", (const uint8_t *)name, strlen(name));
    printf(",\"command_status\":%u", resp.command_status);
    json_string("system_id", resp.system_id, strlen((char *)resp.system_id));
    report_tlvs(resp.tlv);
    printf("}\n");
    destroy_tlv(resp.tlv);
    if (resp.command_status != ESME_ROK) {
        exit(0);
    }
}

int main(int argc, char **argv) {
    if (argc < 8) {
        fprintf(stderr, "usage: %s PORT SYSTEM_ID PASSWORD tx|rx|trx SOURCE_ADDR RECEIPTS TIMEOUT_S [STEP...]\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *source = argv[5];
    int receipts_wanted = atoi(argv[6]);
    deadline = time(NULL) + atoi(argv[7]);

    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
    sock = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(sock, (struct sockaddr *)&address, sizeof address) != 0) {
        fail(strerror(errno));
    }
    bind_as(argv[4], argv[2], argv[3]);

    for (int i = 8; i < argc; i++) {
        char *step = strdup(argv[i]);
        char *kind = strtok(step, ":");
        if (strcmp(kind, "submit") == 0) {
            char *destination = strtok(NULL, ":");
            uint8_t data_coding = (uint8_t)strtol(strtok(NULL, ":"), NULL, 0);
            uint8_t registered_delivery = (uint8_t)strtol(strtok(NULL, ":"), NULL, 0);
            char *text = strtok(NULL, "");
            submit(destination, data_coding, registered_delivery, 0x00, (const uint8_t *)text, strlen(text), source);
        } else if (strcmp(kind, "long") == 0) {
            char *destination = strtok(NULL, ":");
            uint8_t registered_delivery = (uint8_t)strtol(strtok(NULL, ":"), NULL, 0);
            submit_long(destination, registered_delivery, strtok(NULL, ""), source);
        } else if (strcmp(kind, "query") == 0) {
            query(strtok(NULL, ""), source);
        }
        free(step);
    }

    uint8_t buffer[4096];
    int receipts = 0;
    while (pending_count > 0 || receipts < receipts_wanted) {
        int length = read_pdu(buffer, sizeof buffer);
        if (length < 0) {
            fail("connection closed by the bridge");
        }
        uint32_t command = ntohl(*(uint32_t *)(buffer + 4));
        if (command == DELIVER_SM) {
            receipts++; /* the bridge sends this ESME nothing but receipts */
        }
        handle(buffer, length);
    }

    unbind_t unbind;
    memset(&unbind, 0, sizeof unbind);
    unbind.command_id = UNBIND;
    unbind.sequence_number = next_sequence++;
    send_pdu(UNBIND, &unbind);
    pending[pending_count++] = unbind.sequence_number;
    while (pending_count > 0) {
        int length = read_pdu(buffer, sizeof buffer);
        if (length < 0) {
            fail("connection closed before unbind_resp");
        }
        handle(buffer, length);
    }
    close(sock);
    return 0;
}
