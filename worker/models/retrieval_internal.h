// The retrieval model kinds behind MakeRetrievalModel, one per model file. Private to
// worker/models.
#ifndef ATTNPS_WORKER_MODELS_RETRIEVAL_INTERNAL_H_
#define ATTNPS_WORKER_MODELS_RETRIEVAL_INTERNAL_H_

#include "worker/models/retrieval_model.h"

namespace attnps::models {

RetrievalModelKind MostPopularKind();    // retrieval_model.cc
RetrievalModelKind YoutubeDnnKind();     // youtube_dnn_model.cc
RetrievalModelKind ComiRecSaKind();      // comirec_model.cc
RetrievalModelKind ComiRecDrKind();      // comirec_model.cc
RetrievalModelKind SelfAttentionKind();  // self_attention_model.cc

}  // namespace attnps::models

#endif  // ATTNPS_WORKER_MODELS_RETRIEVAL_INTERNAL_H_
